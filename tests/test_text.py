"""Text preparation: escapes, markdown and LaTeX removed; fields chosen by configuration."""

from __future__ import annotations

from recommender.config import TextConfig
from recommender.embedding import chunk_words
from recommender.text import clean_text, prepare_text


def test_literal_newline_escapes_become_line_breaks():
    assert clean_text(r"First.\n\nSecond.") == "First.\n\nSecond."


def test_latex_commands_starting_with_n_are_not_line_breaks():
    assert clean_text(r"\( \nabla f \neq 0 \)\nwhere") == "nabla f neq 0\nwhere"


def test_markdown_markup_is_removed():
    text = r"## Title\n**Bold** and *it* with [a link](http://x.y) and `code`"
    assert clean_text(text) == "Title\nBold and it with a link and code"


def test_latex_delimiters_and_text_commands_are_removed():
    assert clean_text(r"Energy \\( E = mc^2 \\) and $\text{speed}$") == "Energy E = mc^2 and speed"


def test_fields_are_configurable_and_repeats_skipped(demo_corpus):
    a = demo_corpus.get("what-is-the-calvin-cycle")
    assert prepare_text(a, TextConfig(fields=("question",))) == a.question
    both = prepare_text(a, TextConfig(fields=("title", "question", "answer")))
    assert both.startswith(a.title + "\n") and a.question + "\n" + a.question not in both


def test_chunks_cover_long_text_up_to_the_limit():
    words = " ".join(f"w{i}" for i in range(1000))
    chunks = chunk_words(words, max_tokens=100, max_chunks=4)
    assert len(chunks) == 4 and chunks[0].split()[0] == "w0"
    assert all(len(c.split()) == 75 for c in chunks)
