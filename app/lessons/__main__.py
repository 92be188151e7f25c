"""`python -m app.lessons check FILE...`: check lesson files before giving them to the dashboard.

Prints one line per problem (the file, the step, the field, what to do) and exits 2 if there is any; otherwise one
line per file and exit 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.lessons.model import LessonError, read_lesson


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.lessons", description="Check Init Lab lesson files.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="check lesson files: exit 2 with one line per problem")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    problems = []
    for path in args.files:
        try:
            lesson = read_lesson(path)
        except LessonError as e:
            problems.extend(e.problems)
            continue
        print(f"{path.name}: fine: {lesson.title!r}, {len(lesson.steps)} steps")
    for line in problems:
        print(line, file=sys.stderr)
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
