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
