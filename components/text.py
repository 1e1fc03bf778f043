"""Text written by users or loaded from files, for Streamlit's Markdown.

st.markdown, st.caption, st.subheader and widget labels render Markdown: a name like
"[Pay here](https://…) ![](https://tracker/pixel.png)" became a link and a remote image on
other users' screens. plain() makes such text show as typed.
"""
from __future__ import annotations

import re
import string

# Every ASCII punctuation character may be escaped with a backslash in CommonMark, and then stands
# for itself: links, images, emphasis, headings, tables, HTML and LaTeX ($).
_MARKDOWN = re.compile("([" + re.escape(string.punctuation) + "])")
# GitHub's autolinks are found in the text after escapes are read ("https\://x" is still a link): a
# zero-width space after the scheme or the "www" keeps a written address from becoming one.
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp|www)(?=://|\.)")


def plain(text) -> str:
    """text on one line with every Markdown character escaped, to be shown as it was written."""
    one_line = " ".join(str(text if text is not None else "").split())
    return _MARKDOWN.sub(r"\\\1", _AUTOLINK.sub("\\1\u200b", one_line))
