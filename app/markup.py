"""Text the page did not write itself, made safe to show in Streamlit's Markdown-rendering elements.

st.error, st.warning, st.info, st.success, st.markdown and st.caption render their text as GitHub-flavoured
Markdown. A dataset name from a URL, an uploaded file's name or contents, or a message built from them would render
as bold text, a live link or a remote image that loads when the box is shown: each such piece goes through
`escape_markdown` before it reaches one of those calls. No Streamlit here.
"""

from __future__ import annotations

import re

# Every ASCII punctuation character: CommonMark lets each one be backslash-escaped, which makes it literal.
_PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]")
# GitHub's autolinks of bare URLs (https://..., www...., a@b.c, mailto:/xmpp: addresses) are found in the text after
# the escapes are resolved, so escapes do not stop them. An invisible word joiner where each one starts its match
# does: after the colon of "://", between "www" and its dot, and after "@".
_AUTOLINK = re.compile(r"(?<=:)(?=//)|(?<=www)(?=\.)|(?<=@)", re.IGNORECASE)
WORD_JOINER = "\u2060"


def escape_markdown(text: object) -> str:
    """`text` as Markdown that renders as exactly that text: no emphasis, link, image, heading, list, table, HTML,
    math, colour or emoji syntax takes effect, and no URL becomes a link. The reader sees the same characters."""
    joined = _AUTOLINK.sub(WORD_JOINER, str(text))
    return _PUNCTUATION.sub(lambda match: "\\" + match.group(0), joined)


# Names a message holds besides the ones it is given: a file name (a word ending in .h5, .hdf5 or .zip, quoted or
# not) and the course layout's keys.
_CODE_WORDS = re.compile(r"'[^'\n]+\.(?:h5|hdf5|zip)'|[^\s'\"(),;]+\.(?:h5|hdf5|zip)\b|'?\b(?:(?:train|test)_set_[xy]"
                         r"|list_classes)\b'?", re.IGNORECASE)


def code(text: object) -> str:
    """`text` as a Markdown code span: shown in monospace, exactly as typed (no emphasis from its underscores). The
    fence is one backtick longer than any run of backticks inside, and autolinks are broken as in escape_markdown."""
    text = _AUTOLINK.sub(WORD_JOINER, " ".join(str(text).split()))
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def with_file_names_as_code(message: object, names: list[str] = ()) -> str:
    """A message as Markdown: the file names in it (those in `names`, quoted or not, and any other word ending in
    .h5, .hdf5 or .zip) and the course layout's keys as code spans, the rest escaped (escape_markdown)."""
    text = str(message)
    quoted = [repr(n) for n in names] + list(names)
    pattern = "|".join([*(re.escape(n) for n in sorted(quoted, key=len, reverse=True) if n), _CODE_WORDS.pattern])
    out, at = [], 0
    for match in re.finditer(pattern, text, re.IGNORECASE):
        name = match.group(0)
        if name[0] in "'\"" and name[-1] == name[0]:
            name = name[1:-1]
        out += [escape_markdown(text[at:match.start()]), code(name)]
        at = match.end()
    return "".join(out) + escape_markdown(text[at:])


# A teacher's lesson text may use emphasis, code and $math$, but must not link away or load anything: links and
# images keep their words only, autolinks and reference definitions lose their brackets, and raw HTML is escaped.
_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\n]*\)")
_ANGLE = re.compile(r"[<>]")
_REFERENCE = re.compile(r"^( {0,3})\[", re.MULTILINE)


def lesson_markdown(text: object) -> str:
    """Markdown from a lesson file, safe to render: its emphasis, lists, code and math as written; no link, image,
    HTML or URL that becomes one."""
    text = _LINK.sub(lambda match: match.group(1), str(text)).replace("](", "]\\(")  # nested brackets too
    text = _ANGLE.sub(lambda match: "\\" + match.group(0), text)
    text = _REFERENCE.sub(r"\1\\[", text)
    return _AUTOLINK.sub(WORD_JOINER, text)
