"""Text written by users or loaded from files, for Streamlit's Markdown.

st.markdown, st.caption, st.subheader and widget labels render Markdown: a name like
"[Pay here](https://…) ![](https://tracker/pixel.png)" became a link and a remote image on
other users' screens. plain() makes such text show as typed.
"""
from __future__ import annotations

import re
import string

# Every ASCII punctuation character may be escaped with a backslash in CommonMark, and then stands
# for itself: links, images, emphasis, headings, tables, HTML, LaTeX ($) and autolinks (://).
_MARKDOWN = re.compile("([" + re.escape(string.punctuation) + "])")


def plain(text) -> str:
    """text on one line with every Markdown character escaped, to be shown as it was written."""
    return _MARKDOWN.sub(r"\\\1", " ".join(str(text if text is not None else "").split()))
