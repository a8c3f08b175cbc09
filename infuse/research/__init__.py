"""Research: answer a question by planning, searching (knowledge base and web), reading,
noting and writing a cited Markdown report, within budgets.

    research(question, model=..., kb=..., search="searxng:URL") -> Answer
    ResearchSession(model, kb=..., search=..., budget=Budget(...))  a method (eval, serve)
"""

from infuse.research.citations import CitationCheck, check_citations
from infuse.research.core import NO_ANSWER, Budget, ResearchSession, report_dict, research
from infuse.research.websearch import SearchResult, WebSearch, web_search

__all__ = ["NO_ANSWER", "Budget", "CitationCheck", "ResearchSession", "SearchResult",
           "WebSearch", "check_citations", "report_dict", "research", "web_search"]
