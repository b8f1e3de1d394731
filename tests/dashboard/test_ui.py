"""ui.plain: user text for Markdown, shown as typed (the browser side is in tests/e2e/test_browser.py)."""

from __future__ import annotations

import re

from alignscope.dashboard.ui import WORD_JOINER, plain


def _as_shown(escaped: str) -> str:
    """What Markdown displays: backslash escapes and word joiners gone, hard line breaks back to newlines."""
    return re.sub(r"\\(.)", r"\1", escaped.replace("  \n", "\n")).replace(WORD_JOINER, "")


def test_bare_urls_and_addresses_get_an_invisible_break_that_streamlit_does_not_link():
    text = "see https://example.com, HTTP://X.ORG, www.example.org and me@example.com"
    escaped = plain(text)
    for broken in (
        "https\\:" + WORD_JOINER + "//",
        "HTTP\\:" + WORD_JOINER + "//",
        "www" + WORD_JOINER + ".",
        "@" + WORD_JOINER + "example",
    ):
        assert broken in escaped, escaped
    assert _as_shown(escaped) == text


def test_text_without_links_is_only_escaped():
    for text in ("org/model@main", "a_b *c* [d](e) $x$ :red[y]", "1. item\n# heading"):
        escaped = plain(text)
        assert WORD_JOINER not in escaped and _as_shown(escaped) == text
