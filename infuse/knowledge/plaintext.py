"""Plain-text document formats: terminal overstrike, roff man pages, reStructuredText, AsciiDoc, Org.

Each comes out as the Markdown-like text the chunker understands (`#` headings, `-` lists,
fenced code). These are small line-based conversions written here because the field's tools
for them are not Python libraries that run everywhere: `groff`/`mandoc` are system programs
(absent on many machines) and docutils/asciidoctor would be a heavy dependency for what is,
for retrieval, only "find the headings and keep the words".
"""

from __future__ import annotations

import re
from pathlib import Path

# Terminal output of `man` or `nroff`: bold is `X\bX`, underline `_\bX`; colour escapes.
_OVERSTRIKE = re.compile(r"[^\n\x08]\x08")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

_ROFF_MACRO = re.compile(r"^[.'](\S+)\s*(.*)$")
_ROFF_NAMED = {
    "em": "—",
    "en": "–",
    "hy": "-",
    "mi": "-",
    "lq": "“",
    "rq": "”",
    "oq": "‘",
    "cq": "’",
    "aq": "'",
    "dq": '"',
    "bu": "•",
    "co": "©",
    "rg": "®",
    "tm": "™",
    "de": "°",
    "ti": "~",
    "ha": "^",
    "rs": "\\",
    "ga": "`",
    "sl": "/",
    "<=": "<=",
    ">=": ">=",
    "!=": "!=",
    "->": "->",
    "<-": "<-",
    "mu": "×",
    "+-": "±",
    "pl": "+",
    "eq": "=",
    "fm": "′",
    "ba": "|",
    "or": "|",
    "at": "@",
    "sh": "#",
    "Do": "$",
    "lB": "[",
    "rB": "]",
    "lC": "{",
    "rC": "}",
}
_ROFF_STRINGS = {"R": "®", "lq": "“", "rq": "”", "Tm": "™", "(lq": "“", "(rq": "”"}
_ROFF_ESCAPE = re.compile(
    r"\\(?:"
    r"\((?P<two>..)"  # \(em
    r"|\[(?P<long>[^\]]*)\]"  # \[em]
    r"|\*(?:\((?P<s2>..)|\[(?P<sl>[^\]]*)\]|(?P<s1>.))"  # \*(lq \*R
    r"|f(?:\(..|\[[^\]]*\]|.)"  # font changes \fB \f(CW \f[I]
    r"|s[-+]?(?:\d+|\(\d\d|\[\d+\])"  # size changes \s-1
    r"|[kmMnFgYV](?:\(..|\[[^\]]*\]|.)"  # registers and the like: drop
    r"|[hvwlLoxbDXZNR]'[^']*'"  # motions, widths, drawing: drop
    r"|(?P<one>.)"
    r")"
)
_SECTION_HEADINGS = {"SH": "##", "SS": "###", "Sh": "##", "Ss": "###"}


def clean_overstrike(text: str) -> str:
    """Remove terminal bold/underline (`N\\bNA\\bA` -> `NA`, `_\\bx` -> `x`) and ANSI colour codes."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    while "\x08" in text:
        cleaned = _OVERSTRIKE.sub("", text)
        if cleaned == text:
            return text.replace("\x08", "")
        text = cleaned
    return text


def looks_like_roff(text: str) -> bool:
    """True for man-page source: `.TH`/`.Dd` near the top or several roff section macros."""
    head = text[:4000]
    if re.search(r"^\.(TH|Dd|Dt)\s", head, re.MULTILINE):
        return True
    return len(re.findall(r"^\.(SH|SS|PP|TP|IP|Sh|Pp)\b", head, re.MULTILINE)) >= 3


def _roff_escapes(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group("two") or match.group("long")
        if name is not None:
            return _ROFF_NAMED.get(name, "")
        string = match.group("s2") or match.group("sl") or match.group("s1")
        if string is not None:
            return _ROFF_STRINGS.get(string, "")
        one = match.group("one")
        if one is None:
            return ""
        return {
            "-": "-",
            "e": "\\",
            "\\": "\\",
            " ": " ",
            "~": " ",
            "0": " ",
            "t": "\t",
            "'": "'",
            "`": "`",
            ".": ".",
            "%": "",
            "&": "",
            "|": "",
            "^": "",
            "c": "",
            "/": "",
            ",": "",
            "\n": "",
        }.get(one, one if not one.isalnum() else "")

    return _ROFF_ESCAPE.sub(replace, text)


def _macro_args(rest: str) -> list[str]:
    """Split macro arguments, honouring double quotes (`.TP "a b" c`)."""
    args, current, quoted = [], "", False
    for char in rest:
        if char == '"':
            quoted = not quoted
            continue
        if char in " \t" and not quoted:
            if current:
                args.append(current)
            current = ""
            continue
        current += char
    if current:
        args.append(current)
    return args


_MDOC_FLAGS = {
    "Fl": "-",
    "Ar": "",
    "Nm": "",
    "Cm": "",
    "Pa": "",
    "Ev": "",
    "Va": "",
    "Em": "",
    "Sy": "",
    "Li": "",
    "Xr": "",
    "Op": "",
    "Oo": "",
    "Oc": "",
    "Ic": "",
    "Dv": "",
    "Er": "",
    "Fn": "",
    "Fa": "",
    "Ft": "",
    "Cd": "",
    "Ql": "",
    "Dq": "",
    "Sq": "",
    "Pq": "",
    "No": "",
    "Ns": "",
    "Aq": "",
    "Ux": "",
    "Bx": "",
    "At": "",
}


def _mdoc_words(args: list[str], name: str = "") -> str:
    """Inline mdoc macros (`Fl v Ar file`) -> `-v file`; a bare `Nm` is the page's name."""
    words: list[str] = []
    for index, arg in enumerate(args):
        if arg in _MDOC_FLAGS:
            if arg == "Fl":
                words.append("-")
            elif arg == "Nm" and (index + 1 == len(args) or args[index + 1] in _MDOC_FLAGS):
                words.append(name)
            continue
        if words and words[-1] == "-":
            words[-1] = "-" + arg
        else:
            words.append(arg)
    return " ".join(words)


def roff_to_text(source: str) -> tuple[str, str]:
    """Man-page source (man or mdoc macros) -> (title, Markdown-like text).

    Filled text is joined into paragraphs; sections become headings; a `.TP`/`.IP`/`.It` term
    gets its own line with its definition right below; `.nf`/`.EX` blocks become code.
    """
    title = name = ""
    out: list[str] = []
    words: list[str] = []  # the line being filled
    in_code = False
    term_next = False  # the next text is a .TP term: it ends its own line
    bullet = False  # the next text starts a list item (`.IP \(bu`)

    def end_line(blank: bool = False) -> None:
        if words:
            out.append(" ".join(words).replace("\x00 ", ""))
            words.clear()
        if blank and out and out[-1] != "":
            out.append("")

    def add(text: str) -> None:
        nonlocal term_next, bullet
        text = text.strip()
        if not text:
            return
        if bullet:
            end_line()
            text, bullet = "- " + text, False
        words.append(text)
        if term_next:
            end_line()
            term_next = False

    joined = re.sub(r"\\\n", "", source.replace("\r\n", "\n"))  # `\` at a line end continues it
    for raw in joined.split("\n"):
        if raw.startswith(('.\\"', "'\\\"", '\\"')) or raw.strip() in {".", "'"}:
            continue  # comments
        match = _ROFF_MACRO.match(raw)
        if not match:
            if in_code:
                out.append(_roff_escapes(raw))
            elif not raw.strip():
                end_line(blank=True)
            else:
                add(_roff_escapes(raw))
            continue
        macro, rest = match.group(1), match.group(2)
        args = [_roff_escapes(arg) for arg in _macro_args(rest)]
        if macro in {"TH", "Dt"}:
            title = f"{args[0]}({args[1]})" if len(args) >= 2 else " ".join(args)
            end_line(blank=True)
            out += [f"# {title}", ""]
        elif macro in _SECTION_HEADINGS:
            end_line(blank=True)
            out += [f"{_SECTION_HEADINGS[macro]} {' '.join(args).strip()}", ""]
        elif macro in {"PP", "P", "LP", "sp", "Pp", "Lp", "HP", "RS", "RE"}:
            end_line(blank=True)
        elif macro in {"br", "in", "ti"}:
            end_line()
        elif macro in {"TP", "TQ"}:
            end_line(blank=macro == "TP")
            term_next = True
        elif macro == "IP":
            end_line(blank=True)
            if args and args[0] not in {"•", "*", "-", "o"}:
                words.append(args[0])
                end_line()
            elif args:
                bullet = True
        elif macro in {"nf", "EX", "Bd"}:
            end_line(blank=True)
            out.append("```")
            in_code = True
        elif macro in {"fi", "EE", "Ed"}:
            if in_code:
                out += ["```", ""]
            in_code = False
        elif macro in {"B", "I", "SM", "SB", "CW"}:
            add(" ".join(args))
        elif macro in {"BR", "RB", "IR", "RI", "BI", "IB"}:
            add("".join(args))
        elif macro == "It":
            end_line(blank=True)
            words.append(_mdoc_words(args, name))
            end_line()
        elif macro == "Nd":
            add("- " + _mdoc_words(args, name))
        elif macro in _MDOC_FLAGS:
            if macro == "Nm" and args and not name:
                name = args[0]
            add(_mdoc_words([macro, *args], name))
        elif macro in {"UR", "MT"}:
            add(" ".join(args))
        elif macro == "so" and args:  # a page that only points to another page
            add(f"See {Path(args[0]).name}.")
        # every other request (.de, .if, .ft, .ne, .so, .ds, ...) carries layout, not words
    end_line()
    if in_code:
        out.append("```")
    return title, "\n".join(out)


_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+_:.])\1{2,}\s*$")
_ADOC_HEADING = re.compile(r"^(={1,6})\s+(.*)$")
_ORG_HEADING = re.compile(r"^(\*{1,6})\s+(.*)$")


def rst_to_text(text: str) -> str:
    """reStructuredText: underlined titles become `#` headings (levels in order of first use);
    `::` literal blocks and directives stay as text."""
    lines = text.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    levels: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        following = lines[index + 1] if index + 1 < len(lines) else ""
        overline = _RST_UNDERLINE.match(line) and index + 2 < len(lines)
        if overline and lines[index + 1].strip() and _RST_UNDERLINE.match(lines[index + 2]):
            marker, title, index = "o" + line.strip()[0], lines[index + 1].strip(), index + 3
        elif (
            line.strip()
            and _RST_UNDERLINE.match(following)
            and len(following.strip()) >= len(line.strip()) - 1
            and not _RST_UNDERLINE.match(line)
        ):
            marker, title, index = following.strip()[0], line.strip(), index + 2
        else:
            if not line.lstrip().startswith(".. ") or line.lstrip().startswith(".. note"):
                out.append(line)
            index += 1
            continue
        if marker not in levels:
            levels.append(marker)
        out += ["", "#" * min(levels.index(marker) + 1, 6) + " " + title, ""]
    return "\n".join(out)


def adoc_to_text(text: str) -> str:
    """AsciiDoc: `= Title` / `== Section` headings become `#` headings; `----` blocks code."""
    out = []
    for line in text.replace("\r\n", "\n").split("\n"):
        heading = _ADOC_HEADING.match(line)
        if heading:
            out += ["", "#" * len(heading.group(1)) + " " + heading.group(2).strip(), ""]
        elif line.strip() in {"----", "...."}:
            out.append("```")
        elif line.startswith(":") and line.count(":") >= 2 and " " not in line.split(":")[1]:
            continue  # document attributes (:toc:, :author: ...)
        else:
            out.append(line)
    return "\n".join(out)


def org_to_text(text: str) -> str:
    """Org mode: `* Heading` lines become `#` headings; `#+BEGIN_SRC` blocks code; settings dropped."""
    out = []
    for line in text.replace("\r\n", "\n").split("\n"):
        heading = _ORG_HEADING.match(line)
        upper = line.strip().upper()
        if heading:
            out += ["", "#" * len(heading.group(1)) + " " + heading.group(2).strip(), ""]
        elif upper.startswith(("#+BEGIN_SRC", "#+BEGIN_EXAMPLE", "#+END_SRC", "#+END_EXAMPLE")):
            out.append("```")
        elif upper.startswith("#+TITLE:"):
            out += ["# " + line.split(":", 1)[1].strip(), ""]
        elif upper.startswith("#+"):
            continue
        else:
            out.append(line)
    return "\n".join(out)
