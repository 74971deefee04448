"""Failing tests from break14 (a new user's reading of the prose made from the gensim enwiki sample): reproduce,
do not fix. Each wikitext is cut from a real article of the sample."""

from __future__ import annotations

import pytest

from bertpt.data.wikipedia import article_text

CASES = [
    # Animal Farm: {{nbsp}} is a space on the page; today "15September 1972"
    ("in ''[[The Times Literary Supplement]]'' on 15{{nbsp}}September 1972 as \"How the essay came\".",
     "on 15 September 1972"),
    # ASCII: {{mdashb}} is a dash between words; today "computersfollowing" and "(1984)and"
    ("a layout that has become standard on computers{{mdashb}}following the [[IBM PC]] (1981), especially "
     "[[Model M]] (1984){{mdashb}}and thus shift values.", "computers"),
    # Apollo 11: {{'s}} is the possessive; today "from Eagle footpads"
    ("one of the probes hanging from ''Eagle''{{'s}} footpads had touched the surface.", "Eagle's footpads"),
    # Aikido: the lead's subject is in {{nihongo}}; today the article starts "is a modern Japanese martial art"
    ("{{Nihongo|'''Aikido'''|合気道|Aikidō|lead=yes}} is a modern Japanese martial art developed by Morihei Ueshiba.",
     "Aikido"),
    # Albedo: ''θ''<sub>''i''</sub> shows "θi"; today "θ'i" (the two italic runs are read as one run of four)
    ("the albedo at a particular [[solar zenith angle]] ''θ''<sub>''i''</sub> can reasonably be approximated.",
     "angle θi can"),
]


@pytest.mark.parametrize("wikitext,expected", CASES, ids=["nbsp", "mdashb", "possessive", "nihongo", "sub-italics"])
def test_inline_templates_keep_the_sentence_whole(wikitext, expected):
    text = article_text(wikitext)
    assert expected in text, text
    if "mdashb" in wikitext:
        assert "computersfollowing" not in text and ")and" not in text, text
