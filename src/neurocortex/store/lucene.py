"""Parser for the subset of Lucene's query-string syntax used in `{"_string": ...}` queries.

Supported: `field:value`, `field:"a phrase"`, `field:val*` / `field:v?l` wildcards, bare terms and phrases
(any text field), `field:(a OR b)` groups, `field:[a TO b]` / `{a TO b}` / mixed ranges with `*` for an
open end, `field:>5` `>=` `<` `<=`, `_exists_:field`, `field:*`, `*` / `*:*`, `AND` `OR` `NOT` `&&` `||`
`!`, `+`/`-` prefixes, parentheses and backslash escapes. Boosts (`^2`) and fuzziness (`~1`) are accepted
and ignored.

Precedence is NOT > AND > OR > juxtaposition. Juxtaposed clauses follow Lucene's default operator (OR),
except that `+clause` is required and `-clause` is excluded; a query made only of exclusions matches
everything else, as Elasticsearch does.

The parser only builds a syntax tree; store/query.py decides what a term means for each field.
"""

from __future__ import annotations

from dataclasses import dataclass

from neurocortex.errors import SearchError

MAX_DEPTH = 32


@dataclass(frozen=True)
class Term:
    field: str | None  # None: the model's default (text-like) fields
    value: str  # unescaped, except for wildcards whose escapes are kept (see has_wildcard)
    kind: str  # "term" | "phrase" | "wildcard"


@dataclass(frozen=True)
class Range:
    field: str | None
    low: str | None  # None = unbounded
    high: str | None
    include_low: bool
    include_high: bool


@dataclass(frozen=True)
class Exists:
    field: str


@dataclass(frozen=True)
class MatchAll:
    pass


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Term | Range | Exists | MatchAll | And | Or | Not


def parse(text: str) -> Node:
    if not isinstance(text, str):
        raise SearchError("_string expects a query string")
    tokens = _tokenize(text)
    if tokens[0].type == "EOF":
        return MatchAll()
    return _Parser(text, tokens).parse()


def unescape(raw: str) -> str:
    out = []
    chars = iter(raw)
    for c in chars:
        out.append(next(chars, "\\") if c == "\\" else c)
    return "".join(out)


def has_wildcard(raw: str) -> bool:
    """Whether `raw` (escapes kept) contains an unescaped * or ?."""
    escaped = False
    for c in raw:
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c in "*?":
            return True
    return False


# --- tokens -------------------------------------------------------------------------------------


@dataclass
class _Token:
    type: str  # ( ) [ ] { } : + - NOT AND OR WORD PHRASE EOF
    text: str  # WORD: raw text with escapes; PHRASE: unescaped content
    pos: int
    spaced: bool  # whitespace (or the start) precedes the token


_PUNCTUATION = "()[]{}:"
_WORD_END = set(_PUNCTUATION) | {'"', "^", "~"}


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    spaced = True
    in_range = False

    def emit(type_: str, value: str, pos: int) -> None:
        nonlocal spaced
        tokens.append(_Token(type_, value, pos, spaced))
        spaced = False

    while i < n:
        c = text[i]
        if c.isspace():
            spaced = True
            i += 1
            continue
        start = i
        prev = tokens[-1] if tokens else None
        # A sign right after "field:" or inside a range belongs to the value (tlp:-1, [-5 TO 5]).
        in_value = in_range or (prev is not None and prev.type == ":" and not spaced)
        if text.startswith("&&", i) or text.startswith("||", i):
            emit("AND" if c == "&" else "OR", text[i : i + 2], start)
            i += 2
        elif c in _PUNCTUATION:
            if c in "[{":
                in_range = True
            elif c in "]}":
                in_range = False
            emit(c, c, start)
            i += 1
        elif c == '"':
            i += 1
            chars = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(text[i])
                i += 1
            if i >= n:
                raise _error(text, start, "unterminated phrase")
            i += 1
            emit("PHRASE", "".join(chars), start)
            i = _skip_modifiers(text, i)
        elif c in "+-!" and not in_value:
            emit("NOT" if c == "!" else c, c, start)
            i += 1
        else:
            while i < n and not text[i].isspace() and text[i] not in _WORD_END:
                i += 2 if text[i] == "\\" else 1
            raw = text[start:i]
            i = _skip_modifiers(text, i)
            if raw in ("AND", "OR", "NOT") and not in_range:
                emit(raw, raw, start)
            elif raw:
                emit("WORD", raw, start)
            else:
                raise _error(text, start, f"unexpected {c!r}")
    tokens.append(_Token("EOF", "", n, True))
    return tokens


def _skip_modifiers(text: str, i: int) -> int:
    # term^2 (boost) and term~1 (fuzziness, proximity) change scoring or approximate matching, which a
    # database filter has no use for.
    while i < len(text) and text[i] in "^~":
        i += 1
        while i < len(text) and (text[i].isdigit() or text[i] == "."):
            i += 1
    return i


def _error(text: str, pos: int, what: str) -> SearchError:
    return SearchError(f"Invalid query string {text!r}: {what} at position {pos}")


# --- grammar ------------------------------------------------------------------------------------

_Clause = tuple[str, Node]  # (prefix "+", "-" or "", node)
_COMPARATORS = (">=", "<=", ">", "<")


class _Parser:
    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0

    def parse(self) -> Node:
        node = self.sequence(None, 0)
        if self.peek().type != "EOF":
            raise self.unexpected()
        return node

    # helpers

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        self.i += 1
        return token

    def expect(self, type_: str) -> _Token:
        if self.peek().type != type_:
            raise self.unexpected(f"expected {type_!r}")
        return self.take()

    def unexpected(self, detail: str = "") -> SearchError:
        token = self.peek()
        what = "end of query" if token.type == "EOF" else repr(token.text)
        return _error(self.text, token.pos, f"unexpected {what}" + (f" ({detail})" if detail else ""))

    # rules

    def sequence(self, field: str | None, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise _error(self.text, self.peek().pos, "too deeply nested")
        clauses: list[_Clause] = []
        while self.peek().type not in ("EOF", ")"):
            clauses.append(self.disjunction(field, depth))
        if not clauses:
            raise self.unexpected("empty group")
        if len(clauses) == 1:
            return _apply(clauses[0])
        required = [node for sign, node in clauses if sign == "+"]
        excluded = [Not(node) for sign, node in clauses if sign == "-"]
        optional = [node for sign, node in clauses if sign == ""]
        parts: list[Node] = required + excluded
        # Optional clauses only matter (for matching) when nothing is required.
        if optional and not required:
            parts.append(optional[0] if len(optional) == 1 else Or(tuple(optional)))
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def disjunction(self, field: str | None, depth: int) -> _Clause:
        clauses = [self.conjunction(field, depth)]
        while self.peek().type == "OR":
            self.take()
            clauses.append(self.conjunction(field, depth))
        if len(clauses) == 1:
            return clauses[0]
        return "", Or(tuple(_apply(c) for c in clauses))

    def conjunction(self, field: str | None, depth: int) -> _Clause:
        clauses = [self.unary(field, depth)]
        while self.peek().type == "AND":
            self.take()
            clauses.append(self.unary(field, depth))
        if len(clauses) == 1:
            return clauses[0]
        return "", And(tuple(_apply(c) for c in clauses))

    def unary(self, field: str | None, depth: int) -> _Clause:
        token = self.peek()
        if token.type == "NOT":
            self.take()
            return "", Not(_apply(self.unary(field, depth + 1)))
        if token.type in ("+", "-"):
            self.take()
            return token.type, _apply(self.unary(field, depth + 1))
        return "", self.primary(field, depth)

    def primary(self, field: str | None, depth: int) -> Node:
        token = self.peek()
        if token.type == "(":
            self.take()
            node = self.sequence(field, depth + 1)
            self.expect(")")
            return node
        if token.type in ("[", "{"):
            return self.range(field)
        if token.type == "WORD" and self.peek(1).type == ":":
            self.take()
            self.take()
            return self.field_value(unescape(token.text), depth)
        if token.type == "WORD":
            self.take()
            if token.text == "*" and field is None:
                return MatchAll()
            return _term(field, token.text)
        if token.type == "PHRASE":
            self.take()
            return Term(field, token.text, "phrase")
        raise self.unexpected()

    def field_value(self, name: str, depth: int) -> Node:
        token = self.peek()
        if name == "_exists_":
            if token.type not in ("WORD", "PHRASE"):
                raise self.unexpected("expected a field name")
            self.take()
            return Exists(unescape(token.text) if token.type == "WORD" else token.text)
        if name == "*":
            name = None  # *:value searches every field
        if token.type == "(":
            self.take()
            node = self.sequence(name, depth + 1)
            self.expect(")")
            return node
        if token.type in ("[", "{"):
            return self.range(name)
        if token.type == "PHRASE":
            self.take()
            return Term(name, token.text, "phrase")
        if token.type != "WORD":
            raise self.unexpected("expected a value")
        self.take()
        raw = token.text
        comparator = next((c for c in _COMPARATORS if raw.startswith(c)), None)
        if comparator is not None:
            bound = raw[len(comparator) :]
            if not bound:
                bound = self.expect("WORD").text
            return _comparison(name, comparator, unescape(bound))
        # Be lenient with unescaped colons inside a value (dataTypeList:thehive:case), which Lucene
        # would reject: glue together words that touch.
        while self.peek().type == ":" and not self.peek().spaced and self.peek(1).type == "WORD":
            if self.peek(1).spaced:
                break
            self.take()
            raw += "\\:" + self.take().text
        if raw == "*":
            return MatchAll() if name is None else Exists(name)
        return _term(name, raw)

    def range(self, field: str | None) -> Node:
        include_low = self.take().type == "["
        low = self.range_bound()
        to = self.expect("WORD")
        if to.text != "TO":
            raise _error(self.text, to.pos, "expected 'TO'")
        high = self.range_bound()
        close = self.peek()
        if close.type not in ("]", "}"):
            raise self.unexpected("expected ']' or '}'")
        self.take()
        return Range(field, low, high, include_low, close.type == "]")

    def range_bound(self) -> str | None:
        token = self.peek()
        if token.type == "PHRASE":
            self.take()
            return token.text
        if token.type == "WORD" and token.text != "TO":
            self.take()
            return None if token.text == "*" else unescape(token.text)
        raise self.unexpected("expected a range bound")


def _apply(clause: _Clause) -> Node:
    sign, node = clause
    return Not(node) if sign == "-" else node


def _term(field: str | None, raw: str) -> Term:
    if has_wildcard(raw):
        return Term(field, raw, "wildcard")
    return Term(field, unescape(raw), "term")


def _comparison(field: str | None, comparator: str, bound: str) -> Range:
    if comparator.startswith(">"):
        return Range(field, bound, None, comparator == ">=", False)
    return Range(field, None, bound, False, comparator == "<=")
