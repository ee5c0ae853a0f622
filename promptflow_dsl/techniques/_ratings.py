"""Ratings as judges write them: read out of a reply, or a :class:`ParseError`.

The judges (``ultrafeedback``, ``complexity_score``, ``quality_score``) rate one item or
several, each on a fixed scale. Real judges keep to no single format, so :func:`read_items`
reads, in this order:

- JSON (``{"ratings": [4, 3]}``, ``[4, 3]``, ``[{"rating": 4, "rationale": "..."}]``): the
  whole reply, or a fenced block or an object in prose when nothing outside it rates;
- numbered items, one section each: a header line such as ``Response 1``, ``Output #1:``,
  ``### Text 1``, ``[Score 1]``, ``1.`` or ``[1]``; the numbers must run 1, 2, ... in order;
- one line of bare numbers (``Scores: 4, 3, 5``) for several items;
- the whole reply as the one item.

In an item, the rating is a labelled number (``Rating: 4/5``, ``Score (1-5): 4``, ``I would
rate it a 4``), else the number that opens the item (``7.5``, ``**4**``, ``4/5 - good``),
else a fraction or a bold number, else the item's only number. The rationale follows a
``Rationale:`` (``Reason:``, ``Explanation:``, ...) label, else it is what the item says
besides its rating. A denominator must be the scale's top. No rating, an ambiguous one, a
rating outside the scale, or a wrong count of items is a :class:`ParseError` carrying the
raw reply: never a default.

>>> read_items("**Rating:** 4/5 - clear, but misses the edge case.", scale=Scale(1, 5))
[Item(score=4.0, rationale='clear, but misses the edge case.')]
>>> read_items("Output #1: 3\\nOutput #2: Score: 4.5 out of 5", scale=Scale(1, 5), count=2)
[Item(score=3.0, rationale=''), Item(score=4.5, rationale='')]
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from typing import Any, NamedTuple, NoReturn, TypeVar

from pydantic import BaseModel, Field, create_model
from pydantic.fields import FieldInfo

from .._errors import ParseError

__all__ = ["Item", "Scale", "count_of", "exactly", "format_number", "numbered", "read_items"]

R = TypeVar("R", bound=BaseModel)


class Scale(NamedTuple):
    """The range a rating must lie in, both ends included."""

    low: float
    high: float

    def __str__(self) -> str:
        return f"{format_number(self.low)} to {format_number(self.high)}"

    def schema(self) -> dict[str, Any]:
        """The JSON schema of a list of ratings on this scale (structured decoding and the
        offline model keep to it)."""
        return {"items": {"type": "number", "minimum": self.low, "maximum": self.high}}

    def check(self, values: list[float]) -> list[float]:
        """*values*, or a ValueError naming the first one off the scale (for validators)."""
        for value in values:
            if not self.low <= value <= self.high:
                message = f"{value!r} is not a rating from {self}"
                raise ValueError(message)
        return values


class Item(NamedTuple):
    """One rated item: its rating and the judge's rationale ("" when it gave none)."""

    score: float
    rationale: str


def format_number(value: float) -> str:
    """A rating as a judge writes it: whole numbers without a decimal point.

    >>> format_number(4.0), format_number(2.5)
    ('4', '2.5')
    """
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def count_of(count: int, noun: str) -> str:
    """*count* and *noun*, plural unless one.

    >>> count_of(1, "response"), count_of(3, "response")
    ('1 response', '3 responses')
    """
    return f"{count} {noun}" + ("" if count == 1 else "s")


def numbered(label: str, texts: list[str]) -> str:
    """Texts under numbered headings, as the judges' prompts show them.

    >>> print(numbered("Response", ["Yes.", "No."]))
    ## Response 1
    Yes.
    <BLANKLINE>
    ## Response 2
    No.
    """
    return "\n\n".join(f"## {label} {i}\n{text.strip()}" for i, text in enumerate(texts, 1))


# A number, with its markdown emphasis and an optional denominator ("4/5", "4 out of 5").
_DECOR = r"(?:(?<![*_`])[*_`]+)?"  # a whole run or none: no backtracking inside one
_NUMBER = r"-?\d+(?:\.\d+)?"
_SCORE = (
    rf"{_DECOR}(?<![\w.])(?P<value>{_NUMBER})(?![\w%]|\.\d){_DECOR}"
    rf"(?:[ \t]*(?:/|out[ \t]+of)[ \t]*(?P<top>{_NUMBER})(?![\w%]|\.\d){_DECOR})?"
)
_LABEL_WORDS = r"(?:ratings?|scores?|grades?|rated|rate|scored|marks?|give[sn]?)"
# Between a label and its number: separators, markdown, a parenthesis such as "(1-5)" and
# the small words of "I would rate this response a 4"; never other words or digits.
_FILLER = (
    r"(?:[ \t]*[(\[][^)\]\n]*[)\]])?"
    r"(?:[\s*_`:=\-–—'’]|\b(?:is|of|a|an|as|at|it|be|would|will|i|d|this|that|the|my|its|"
    r"response|answer|output|text|overall|final|with|to|for|me)\b)*?"
)
_LABELLED = re.compile(rf"{_DECOR}\b{_LABEL_WORDS}\b{_FILLER}{_SCORE}", re.IGNORECASE)
_LABEL_ONLY = re.compile(rf"\b{_LABEL_WORDS}\b[^\n:=]{{0,24}}[:=]", re.IGNORECASE)
_OPENING = re.compile(rf"\A(?:[\s>#*_`:|]|[-–—](?!\d))*{_SCORE}", re.IGNORECASE)
_ANY_SCORE = re.compile(_SCORE, re.IGNORECASE)
_BOLD = re.compile(rf"\*\*[ \t]*(?P<value>{_NUMBER})(?P<top>)[ \t]*\*\*")

_LINE_START = r"(?:^[ \t>#*_\-]*|(?<=[\d.;|,)\-–—])[ \t]*(?:(?<![*_])[*_]+)?)"
_RATIONALE = re.compile(
    rf"{_LINE_START}(?:rationale|reason(?:ing)?|explanation|justification|feedback"
    r"|critique|comment)s?[*_ \t]*[:\-–—][*_]*[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
_RATING_LINE = re.compile(rf"^[ \t>#*_\-]*{_LABELLED.pattern}", re.IGNORECASE | re.MULTILINE)

_KEYWORDS = (
    r"(?:response|output|text|answer|generation|completion|candidate|instruction|question"
    r"|item|sample|assistant)s?"
)
_NAMED = re.compile(
    r"^[ \t>#*_]*(?:"
    rf"(?:\[[ \t]*)?(?:\w+[ \t]+(?:for|of)[ \t]+)?(?P<word>{_KEYWORDS})[ \t]*(?:#|no\.?|number)?"
    r"[ \t]*(?P<n>\d{1,3})[*_\]]*[ \t]*(?=[:.)\-–—|(]|$)"
    r"|\[[ \t]*(?P<label>score|rating)[ \t]*#?[ \t]*(?P<m>\d{1,3})[ \t]*\][*_]*"
    r")",
    re.IGNORECASE | re.MULTILINE,
)
_LISTED = re.compile(
    r"^[ \t>#*_]*(?:\[(?P<a>\d{1,3})\]|\((?P<b>\d{1,3})\)|(?P<c>\d{1,3})[.)])[*_]*(?=\s|$)",
    re.MULTILINE,
)
_INLINE = re.compile(
    rf"^[^\d\n]{{0,40}}?[\[(]?[ \t]*(?P<numbers>{_NUMBER}(?:(?:[ \t]*[,;|]|[ \t])[ \t]*{_NUMBER})+)"
    r"[ \t]*[\])]?[ \t.]*$",
    re.MULTILINE,
)
_FENCED = re.compile(r"```[a-zA-Z]*[ \t]*\n(.*?)```", re.DOTALL)
_SEPARATORS = " \t\n\r:-–—|,;."
_LEAD_IN = re.compile(r"[^.!?\n,;:]*\Z")

_SCORE_KEYS = ("ratings", "scores", "rating", "score", "grades", "grade")
_RATIONALE_KEYS = (
    "rationales",
    "rationale",
    "reasons",
    "reason",
    "explanations",
    "explanation",
    "justifications",
    "justification",
    "feedback",
    "critique",
)


def _fail(raw: str, why: str, scale: Scale) -> NoReturn:
    message = f"no usable rating: {why}"
    raise ParseError(message, raw_text=raw, expected=f"a rating from {scale} for each item")


def read_items(text: str, *, scale: Scale, count: int | None = None) -> list[Item]:
    """The rated items in a judge's reply: *count* of them, or as many as it numbers."""
    items = _from_json(text, scale) if "{" in text or "[" in text else None
    if items is None:
        items = _from_text(text, scale, count)
    if not items:
        _fail(text, "the reply rates nothing", scale)
    if count is not None and len(items) != count:
        _fail(text, f"{len(items)} ratings for {count} items", scale)
    return items


# --- JSON ---------------------------------------------------------------------------


def _json_values(text: str) -> Iterator[tuple[Any, str]]:
    """Each JSON value the reply may be, and where: the ``whole`` reply, or a fenced
    ``block`` or an object ``span`` in prose that rates nothing outside it (so JSON quoted
    in a rationale is never read as the ratings)."""
    blocks = [(m.span(1), "block") for m in _FENCED.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        blocks.append(((start, end + 1), "span"))
    for (begin, stop), source in [((0, len(text)), "whole"), *blocks]:
        if source != "whole" and _rates(text[:begin] + "\n" + text[stop:]):
            continue
        try:
            yield json.loads(text[begin:stop]), source
        except (ValueError, RecursionError):
            pass


def _rates(text: str) -> bool:
    """Whether *text* holds a labelled rating or a numbered item."""
    return any(p.search(text) for p in (_LABELLED, _NAMED, _LISTED))


def _from_json(text: str, scale: Scale) -> list[Item] | None:
    for value, source in _json_values(text):
        items = _json_items(value, text, scale)
        if items is not None:
            return items
        if source == "whole" and isinstance(value, (dict, list)):
            _fail(text, "the reply is JSON with no rating in it", scale)
    return None


def _keyed(value: dict[Any, Any], keys: tuple[str, ...]) -> Any:
    lowered = {str(k).strip().lower(): v for k, v in value.items()}
    return next((lowered[k] for k in keys if k in lowered), None)


def _rated(value: Any) -> bool:
    return isinstance(value, dict) and _keyed(value, _SCORE_KEYS) is not None


def _json_items(value: Any, raw: str, scale: Scale) -> list[Item] | None:
    """The items a JSON value holds, or None when it holds no rating."""
    if isinstance(value, list) and value:
        if all(_rated(v) for v in value):
            return [_json_item(v, raw, scale) for v in value]
        if all(isinstance(v, (int, float, str)) for v in value):
            return [Item(_json_score(v, raw, scale), "") for v in value]
        return None
    if not isinstance(value, dict):
        return None
    scores = _keyed(value, _SCORE_KEYS)
    if scores is None:  # a wrapper: {"evaluations": [{"rating": 4}, ...]}
        nested = (v for v in value.values() if isinstance(v, list) and v and all(map(_rated, v)))
        inner = next(nested, None)
        return None if inner is None else [_json_item(v, raw, scale) for v in inner]
    if not isinstance(scores, list):
        return [_json_item(value, raw, scale)]
    if scores and all(_rated(v) for v in scores):
        return [_json_item(v, raw, scale) for v in scores]
    rationales = _keyed(value, _RATIONALE_KEYS)
    if rationales is None:
        rationales = [""] * len(scores)
    if not isinstance(rationales, list) or len(rationales) != len(scores):
        _fail(raw, "the JSON holds a different number of rationales than ratings", scale)
    return [
        Item(_json_score(s, raw, scale), _json_text(r))
        for s, r in zip(scores, rationales, strict=True)
    ]


def _json_item(value: dict[Any, Any], raw: str, scale: Scale) -> Item:
    score = _keyed(value, _SCORE_KEYS)
    if isinstance(score, list):
        _fail(raw, "an item of the JSON holds a list of ratings", scale)
    return Item(_json_score(score, raw, scale), _json_text(_keyed(value, _RATIONALE_KEYS)))


def _json_score(value: Any, raw: str, scale: Scale) -> float:
    if isinstance(value, str):
        return _score(value, raw, scale)[0]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(raw, f"the JSON rating {value!r} is not a number", scale)
    try:
        number = float(value)
    except OverflowError:
        number = float("inf")
    return _in_scale(number, None, raw, scale)


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    return (value if isinstance(value, str) else json.dumps(value)).strip()


# --- text ---------------------------------------------------------------------------


class _Header(NamedTuple):
    kind: str
    number: int
    start: int
    end: int


def _headers(text: str) -> dict[str, list[_Header]]:
    """Item headers by kind (named kinds first, in order of appearance; then list markers)."""
    kinds: dict[str, list[_Header]] = {}
    for match in _NAMED.finditer(text):
        word = (match["word"] or match["label"]).lower().rstrip("s")
        number = int(match["n"] or match["m"])
        kinds.setdefault(word, []).append(_Header(word, number, match.start(), match.end()))
    for match in _LISTED.finditer(text):
        number = int(match["a"] or match["b"] or match["c"])
        kinds.setdefault("", []).append(_Header("", number, match.start(), match.end()))
    return kinds


def _from_text(text: str, scale: Scale, count: int | None) -> list[Item]:
    kinds = _headers(text)
    named = {kind: [h.number for h in headers] for kind, headers in kinds.items() if kind}
    for kind, headers in kinds.items():
        numbers = [h.number for h in headers]
        wanted = list(range(1, (count or len(numbers)) + 1))
        if numbers == wanted:
            if set(named) - {kind}:
                _fail(text, f"it numbers its items in more than one way: {named}", scale)
            ends = [h.start for h in headers[1:]] + [len(text)]
            return [
                _item(text[h.end : end], text, scale) for h, end in zip(headers, ends, strict=True)
            ]
    if count is None or count > 1:
        inline = [m["numbers"] for m in _INLINE.finditer(text)]
        if len(inline) == 1:
            values = [float(m["value"]) for m in _ANY_SCORE.finditer(inline[0])]
            if count is None or len(values) == count:
                return [Item(_in_scale(v, None, text, scale), "") for v in values]
    if (count is None or count == 1) and not named:
        return [_item(text, text, scale)]
    numbers = next(iter(named.values()), [])
    expected = "as many items as it numbers" if count is None else f"{count} items"
    _fail(text, f"it numbers its items {numbers}, for {expected} from 1 in order", scale)


def _item(section: str, raw: str, scale: Scale) -> Item:
    """One item's rating and rationale, from its section of the reply."""
    stripped = section.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except (ValueError, RecursionError):
            value = None
        items = _json_items(value, raw, scale) if isinstance(value, dict) else None
        if items is not None and len(items) == 1:
            return items[0]
    label = _RATIONALE.search(section)
    if label is None:
        score, found = _score(section, raw, scale)
        before = section[: found.start()]
        lead = _LEAD_IN.search(before)
        if found.re is _LABELLED and lead and len(lead.group().split()) <= 4:
            # "..., so I would rate it a 4.": the clause that leads in to the rating goes too
            before = before[: lead.start()].rstrip(" \t,;:")
        rest = (before + section[found.end() :]).strip(_SEPARATORS.replace(".", ""))
        rest = rest.lstrip(_SEPARATORS).strip()
        return Item(score, rest if rest.strip("()[]*_` ") else "")
    after = _RATING_LINE.search(section, label.end())
    stop = after.start() if after else len(section)
    rating_part = section[: label.start()] + "\n" + section[stop:]
    score, _ = _score(rating_part, raw, scale)
    return Item(score, section[label.end() : stop].strip())


def _score(text: str, raw: str, scale: Scale) -> tuple[float, re.Match[str]]:
    """The rating in *text*, and where it was found."""
    labelled = _LABELLED.search(text)
    # The first labelled rating and every one that opens a line must agree.
    said = {float(m["value"]) for m in _RATING_LINE.finditer(text)}
    said |= {float(labelled["value"])} if labelled else set()
    if len(said) > 1:
        _fail(raw, "an item has several labelled ratings that disagree", scale)
    found = labelled or _OPENING.search(text)
    if found is None:
        if _LABEL_ONLY.search(text):
            _fail(raw, "the rating label holds no number", scale)
        fractions = [m for m in _ANY_SCORE.finditer(text) if m["top"]] or list(_BOLD.finditer(text))
        numbers = fractions or list(_ANY_SCORE.finditer(text))
        if len(numbers) != 1:
            why = "no number" if not numbers else "several numbers and no label to choose"
            _fail(raw, why, scale)
        found = numbers[0]
    value = _in_scale(float(found["value"]), found["top"] or None, raw, scale)
    return value, found


def _in_scale(value: float, top: str | None, raw: str, scale: Scale) -> float:
    if top is not None and float(top) != scale.high:
        _fail(raw, f"a rating out of {top}, where the scale is {scale}", scale)
    if not scale.low <= value <= scale.high:
        _fail(raw, f"{format_number(value)} is outside the scale, {scale}", scale)
    return value


# --- result types -------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def exactly(result_type: type[R], fields: tuple[str, ...], count: int) -> type[R]:
    """*result_type* whose list *fields* must hold exactly *count* items.

    The schema says so (``minItems`` = ``maxItems``), so structured decoding and the
    offline model make that many, and validation refuses any other count (a re-ask in a
    structured mode). It keeps the name, fields and validators of *result_type*, and equals
    a plain result with the same fields.
    """
    overrides: dict[str, Any] = {}
    for name in fields:
        field = result_type.model_fields[name]
        merged = FieldInfo.merge_field_infos(field, Field(min_length=count, max_length=count))
        overrides[name] = (field.annotation, merged)
    counted = create_model(
        result_type.__name__,
        __base__=result_type,
        __module__=result_type.__module__,
        **overrides,
    )
    counted.__qualname__ = result_type.__qualname__
    counted.__doc__ = result_type.__doc__

    def equal(self: BaseModel, other: object) -> bool:
        if not isinstance(other, result_type):
            return NotImplemented
        return dict(self) == dict(other)

    type.__setattr__(counted, "__eq__", equal)
    return counted
