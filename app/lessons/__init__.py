"""Init Lab's lessons: one TOML file per lesson (this folder's, and a teacher's in $INITLAB_LESSONS_DIR).

model.py parses and checks a lesson file, evaluate.py measures a step's answer and the theory's prediction,
summary.py writes the teacher's printable page, __main__.py is the checker (`python -m app.lessons check FILE...`);
the Lessons tab is app/tabs/lessons.py. The format: README.md here.
"""
