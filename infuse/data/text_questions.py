"""Question/answer pairs read straight off the text, with no model.

Why our own: question-generation libraries need a model of their own (T5/BART QG checkpoints
from a model hub, which cannot be reached here), and the packaged 135M chat model copies the
answer into its question or invents an answer: on 28 Debian manuals it wrote 0 usable pairs
from 52 passages in 6 minutes. These templates word their questions plainly, but every answer
is a span of the text, so a folder of documents always yields a grounded set in milliseconds.
`synthesize_qa` asks the model first (a stronger one, `--base-url`, writes better questions)
and fills the rest from here.

Three templates, strictest first:
- a definition (`term` / `: definition`, how the readers write `<dl>` entries and man-page
  options): "What is TERM?" -> the definition's first clause;
- a copular sentence ("The default mode is serialized."): "What is the default mode?" ->
  "serialized", or one with a plain verb ("SQLite supports three threading modes."): "What does
  SQLite support?" -> "three threading modes";
- a sentence holding one number: the sentence asked back with the number as "what" or "how
  many <unit>" -> the number (and its unit word).

`unanswerable_questions` makes questions the documents cannot answer: a kept question with its
rarest content word swapped for one that occurs nowhere in the documents.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence

from infuse.knowledge.words import FUNCTION_WORDS, common_words

_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?](?=\s|$))")
_DEFINITION = re.compile(r"^(?P<term>[^\n:]{2,60})\n: (?P<body>[^\n]+)", re.MULTILINE)
_COPULA = re.compile(
    r"^(?P<subj>[A-Z][\w'/.\- ]{2,70}?) (?P<verb>is|are|was|were) (?P<obj>[^;:]{1,140})\.$"
)
_ACTION = re.compile(
    r"^(?P<subj>[A-Z][\w'/.\- ]{2,70}?) (?P<verb>supports|uses|requires|provides|returns|contains|"
    r"includes|accepts|stores|reads|writes|generates|creates|defines|sets|allows|needs|takes) "
    r"(?P<obj>[^;:]{1,140})\.$"
)
# a number in running text, not in code ("BASH_VERSINFO[0]", "$0", "*15*") or a version ("3.40.1")
_NUMBER = re.compile(
    r"(?<![\w.\\\-\[$*])(?P<num>\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?P<unit> [a-z]+)?(?![\w\-\]*]|\.\w)"
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")

# A sentence that opens with one of these leans on the one before it ("It is ...", "This is ...").
_LEANING = frozenset(
    "it this that these those there here one but or and if when because so also such each which "
    "what some other all most both none he she they we you i its their his her then thus however "
    "otherwise for in on at as by with from of to after before while until since only any our your "
    "my during unlike like once where whether".split()
)
_OBJECT_OPENERS = frozenset("a an the to one two three four five six seven eight nine ten".split())
_ENUMERATION = re.compile(r"\s*[\w-]+(?: [\w-]+)?,? (?:and|or) ")
# What "X is ..." says when it gives a state, not a name ("Linux on POWER5 is supported"): a
# "What is X?" question would not be answered by it.
_STATE_WORDS = frozenset(
    "supported unsupported stripped deprecated enabled disabled required optional available "
    "unavailable used needed ignored allowed forbidden possible impossible now currently still "
    "very quite too much more less always never already".split()
)
_ACTION_GERUNDS = frozenset(
    "using running calling setting adding making getting doing reading writing creating starting "
    "taking building installing enabling disabling passing fixing detecting checking giving".split()
)
_DETERMINERS = frozenset({"the", "a", "an", "this", "that", "these", "those", "your", "its", "their"})
_STOPWORDS = FUNCTION_WORDS | frozenset(
    "must shall their they them then than so such into about over under".split()
)
# Off-domain nouns for unanswerable questions: each is used only when the documents never say it.
_FOREIGN_TERMS = (
    "submarine", "volcano", "giraffe", "saxophone", "glacier", "telescope", "orchard",
    "lighthouse", "trombone", "cathedral", "asteroid", "penguin", "vineyard", "canoe",
)
# Words in a subject that show the sentence was cut mid-clause ("To configure X without a feature that").
_CLAUSE_WORDS = frozenset("that which who whom whose when while after before if unless than".split())
_UNITS = frozenset(
    "seconds second minutes minute hours hour days day weeks week months month years year ms "
    "milliseconds microseconds bytes byte kb mb gb tb kib mib gib kilobytes megabytes gigabytes bits "
    "bit pages page rows row columns column characters character digits digit times percent "
    "threads thread connections entries items lines files versions releases increments".split()
)
# Words too general to pin a question or an answer down ("What are the options?" -> "detailed below").
_GENERIC = frozenset(
    "below above detailed following follows some time times character characters thing things way "
    "ways case cases part parts rest ones one options option value values example examples same "
    "other others different used given shown described listed available possible several many "
    "much more less most least first second third last next new old good best simple easy "
    "usual usually important piece file files text section chapter page above-mentioned".split()
)
_FOREIGN_NOTE = "unanswerable: asks about '{term}', which no document mentions"


def _words(text: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(text)]


def _specific(text: str) -> bool:
    """True when `text` names something: a number, a code-like token, or a word that is
    neither a stopword nor too general."""
    if re.search(r"\d|[_`<>=/]|\w[.-]\w|\b[A-Z]{2,}\b", text):
        return True
    return any(word not in _STOPWORDS and word not in _GENERIC and len(word) > 2
               for word in _words(text))


def _names_something(text: str) -> bool:
    """True when `text` names a particular thing a reader can look up: code ("mmap_size",
    "--schema", "HISTCMD", "index 0"), a name written with a capital inside the text
    ("the Apache server"), or a word rarer than everyday English ("the mkclone script").
    "the default mode" or "the intent of the developers" names nothing on its own: its question
    leans on the passage around it. Without the common-word list, any specific word will do."""
    if _is_activity(text):
        return False
    if re.search(r"\d|[_`<>=/]|\w[.-]\w|[a-z][A-Z]|\b[A-Z]{2,}\b", text):
        return True
    common = common_words()
    if not common:
        return _specific(text)
    words = _WORD.findall(text)
    if any(word[0].isupper() for word in words[1:]):
        return True
    return any(word.lower() not in common and word.lower() not in _STOPWORDS and len(word) > 2
               for word in words)


def _is_activity(text: str) -> bool:
    """ "Reliably detecting races", "Using the cache": a doing, not a thing one looks up
    ("What is Reliably detecting races?" asks nothing). An adverb leads it, or a gerund with a
    determiner after it ("Threading modes" stays: a participle naming a kind of thing)."""
    words = [word.lower() for word in text.split()]
    if len(words) < 2:
        return False
    if _is_adverb(words[0]):
        return True
    return words[0] in _ACTION_GERUNDS or (words[0].endswith("ing") and words[1] in _DETERMINERS)


def _is_adverb(word: str) -> bool:
    """ "reliably", "heavily" (not "only", "fly")."""
    return word.lower().endswith("ly") and len(word) > 4


def _trim_clause(text: str, max_words: int) -> str | None:
    """The text up to its first clause break, if that is at most `max_words` words; None for a
    fragment: a comma that opens an enumeration ("Specify the size, associativity and line
    size" is not "Specify the size") or a quote or bracket left open."""
    clause, *rest = re.split(r",|;|\. | \(| - | -- | which | because | so that | unless ", text, maxsplit=1)
    if rest and text[len(clause)] == "," and _ENUMERATION.match(rest[0]):
        return None
    clause = clause.strip().rstrip(".")
    if clause.count('"') % 2 or clause.count("(") != clause.count(")"):
        return None
    words = clause.split()
    if not 1 <= len(words) <= max_words or words[-1].lower() in _STOPWORDS:
        return None  # "one in" (cut before "which"): a fragment, not an answer
    return clause if _specific(clause) else None


def _definition_pairs(text: str, max_words: int) -> list[tuple[str, str]]:
    pairs = []
    for match in _DEFINITION.finditer(text):
        term, body = match.group("term").strip(), match.group("body").strip()
        answer = _trim_clause(body, max_words)
        if (answer and len(term.split()) <= 6 and _names_something(term)
                and set(_words(answer)) - set(_words(term))):
            pairs.append((f"What is {term}?", answer))
    return pairs


def _copular_pair(sentence: str, max_words: int) -> tuple[str, str] | None:
    """ "The default mode is serialized." -> ("What is the default mode?", "serialized");
    "SQLite supports three threading modes." -> ("What does SQLite support?", ...)."""
    match = _COPULA.match(sentence) or _ACTION.match(sentence)
    if not match:
        return None
    subject, verb, obj = match.group("subj").strip(), match.group("verb"), match.group("obj")
    subject_words = subject.split()
    if not 1 <= len(subject_words) <= 8:
        return None
    if subject_words[0].lower().split("'")[0] in _LEANING or subject_words[-1].lower() in _LEANING:
        return None  # "This is ...", "It's worth fixing errors in the order they" (are reported)
    if any(word.lower() in _CLAUSE_WORDS for word in subject_words):
        return None
    head = [word.lower() for word in subject_words if word.lower() not in _OBJECT_OPENERS]
    if not head or head[0] in _GENERIC or not _names_something(subject):
        return None  # "the ones starting with ..." or "the default mode": which ones, of what?
    answer = _trim_clause(obj, max_words)
    if answer is None:
        return None
    opening = re.sub(r"^\([^)]*\)\s*", "", answer).split()  # past a "(conceptually)" aside
    first = opening[0].lower() if opening else ""
    if first in {"not", "also", "often", "usually", "only", "this", "these", "that", "those", ""}:
        return None  # "this line now": leans on the sentence around it
    if first in _STATE_WORDS:
        return None  # "currently supported", "used heavily": a state, not a thing to name
    if _is_adverb(first):
        return None
    if re.fullmatch(r"(?:the |a |an )?[\d,.]+", subject, re.IGNORECASE):
        return None  # "What is the 12345?"
    if len(answer.split()) > 3 and first not in _OBJECT_OPENERS and not answer[0].isupper():
        return None  # "disabled by default unless ..." is a description, not a thing to name
    if subject_words[0] in {"The", "A", "An"}:
        subject = subject[0].lower() + subject[1:]
    if verb in {"is", "are", "was", "were"}:
        return f"What {verb} {subject}?", answer
    return f"What does {subject} {verb[:-1]}?", answer


def _number_pair(sentence: str) -> tuple[str, str] | None:
    words = sentence.split()
    if not 6 <= len(words) <= 30 or not sentence[0].isupper() or words[0].lower() in _LEANING:
        return None
    matches = [m for m in _NUMBER.finditer(sentence) if m.start() > 0]
    if len(matches) != 1:
        return None  # none, or several: a blank among many numbers is a guess
    match = matches[0]
    if sentence[: match.start()].rstrip().endswith(":") and not sentence[match.end():].strip(" .)"):
        return None  # "The simplest way to compile Bash is: 1." opens a numbered list
    if not _is_prose(sentence) or _is_label_number(sentence, match):
        return None
    if not _names_something(sentence[: match.start()] + sentence[match.end():]):
        return None  # "The maximum value is 255.": the maximum value of what?
    unit = match.group("unit") or ""
    answer = (match.group("num") + (unit if unit.strip() in _UNITS else "")).strip()
    # an echo question keeps every word of the sentence, so retrieval and the decline check
    # find them in the passage: "... within 38 days of delivery." -> "... within how many days
    # of delivery?"
    asked = f"how many{unit}" if answer.endswith(unit) and unit else "what"
    question = sentence[: match.start()] + asked + sentence[match.start() + len(answer):]
    return question.rstrip(".!? ") + "?", answer


def _is_prose(sentence: str) -> bool:
    """A sentence of running text, not a title, a citation or a changelog line ("The GNU General
    Public License 2.", "Thread Library Documentation, Boost website, 2007."): two function
    words at least ("The gateway listens on port 8731." has two)."""
    return sum(1 for word in _WORD.findall(sentence) if word.lower() in FUNCTION_WORDS) >= 2


def _is_label_number(sentence: str, match: re.Match) -> bool:
    """A number that labels rather than measures: an issue or bug id ("Closes: #931315", a bare
    run of five digits or more), a step marker ("(1) Run gdb"), a manual section ("man 2 open")."""
    number, before = match.group("num"), sentence[: match.start()]
    if before.strip().lower() in {"", "the", "a", "an"}:
        return True  # "The 12345 is the process ID.": the number is what the sentence is about
    if before.endswith(("#", "(")) and sentence[match.end():match.end() + 1] == ")":
        return True
    if before.rstrip().endswith("#") or (len(number) >= 5 and number.isdigit() and not match.group("unit")):
        return True
    return before.rstrip().lower().endswith(("man", "section", "chapter", "step", "version"))


def _sentences(text: str) -> Iterable[str]:
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in paragraph.splitlines()]
        # headings, the chunker's "Title > Section" breadcrumb and table rows ("| a | b |") are
        # labels and cells, not sentences
        flat = " ".join(line for line in lines
                        if not line.startswith(("#", "|")) and " > " not in line)
        flat = re.sub(r"^(?:[-*]|\d+\.)\s+", "", flat)
        for match in _SENTENCE.finditer(flat):
            yield match.group(0).strip()


_LEAD_VERBS = re.compile(r"^(?:to use|by using|using|use|to run|to set|to call)\s+(?=\S)", re.IGNORECASE)


def answer_aliases(answer: str) -> list[str]:
    """Shorter forms of an answer read off the text that still answer the question: "to use
    php-cgi" -> "php-cgi" (an assistant answers "php-cgi" and is right)."""
    short = _LEAD_VERBS.sub("", answer).strip()
    return [short] if short != answer and _specific(short) else []


LICENCE_NAMES = re.compile(r"^(copyright|copying|licen[cs]e|notice)([._-].*)?$", re.IGNORECASE)


def text_pairs(text: str, *, max_pairs: int = 3, max_answer_words: int = 12) -> list[tuple[str, str]]:
    """Up to `max_pairs` (question, answer) pairs whose answers are spans of `text`:
    definitions first, then copular sentences, then numbers."""
    found = _definition_pairs(text, max_answer_words)
    numbers = []
    for sentence in _sentences(text):
        pair = _copular_pair(sentence, max_answer_words)
        if pair:
            found.append(pair)
        else:
            pair = _number_pair(sentence)
            if pair:
                numbers.append(pair)
    return (found + numbers)[:max_pairs]


# "What does the mkclone script require?": the subject a question asks about, whose rarest
# word becomes a thing no document mentions ("the submarine script")
_ASKS_ABOUT = re.compile(r"^(?:What|Which|Who|Whom|Where|When|How)\b(?P<subject>.+)\?$")


def unanswerable_questions(
    questions: Sequence[str], corpus: str, count: int, *, seed: int = 0
) -> list[tuple[str, str]]:
    """Up to `count` (question, note) pairs the documents cannot answer: each a kept "What is
    X?"-style question whose subject's rarest content word is replaced by an off-domain noun that
    `corpus` never contains (echoed sentences are skipped: their answer stays in the text)."""
    vocabulary = Counter(_words(corpus))
    foreign = [term for term in _FOREIGN_TERMS if term not in vocabulary]
    rng = random.Random(seed)
    picked = list(questions)
    rng.shuffle(picked)
    out = []
    for question in picked:
        if len(out) >= min(count, len(foreign)):
            break
        subject = _ASKS_ABOUT.match(question)
        if subject is None:
            continue  # an echoed sentence: swapping one of its words leaves its answer in the text
        content = [w for w in _WORD.findall(subject.group("subject"))
                   if w.lower() not in _STOPWORDS and len(w) > 3]
        if not content:
            continue
        rarest = min(content, key=lambda word: vocabulary[word.lower()])
        term = foreign[len(out)]
        out.append((re.sub(rf"\b{re.escape(rarest)}\b", term, question, count=1),
                    _FOREIGN_NOTE.format(term=term)))
    return out
