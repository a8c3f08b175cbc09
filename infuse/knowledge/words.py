"""Function words: the articles, pronouns, auxiliaries and prepositions that carry no topic.

Every place that compares texts by their content words (RAG's grounding check, a report's
citation check, question generation) leaves out `FUNCTION_WORDS` plus the few extras its own
job needs, named beside its use.
"""

from __future__ import annotations

FUNCTION_WORDS = frozenset(
    "a an the is are was were be been of to in on at by for with from and or as it its this that "
    "these those there what which who how when where why do does did not no can could will would "
    "should may might".split()
)
