"""Undo the usual ways analysts "defang" indicators so that they can be parsed again.

Reports and tickets write `hxxp://evil[.]com` or `bad(at)example(dot)org` so that nobody clicks them;
every analyzer in this directory refangs first and says so in its report.
"""

import re

# (pattern, replacement, trigger substrings): a rule only runs when one of its triggers occurs in the
# lower-cased text, which keeps refanging megabytes of ordinary text cheap. The bracketed forms allow
# spaces inside and around the brackets because that is how people type them ("evil [ . ] com").
_RULES = [
    (
        re.compile(r"\bh(?:xx|\*\*|__|\[tt\])p(s?)(?=\s*(?:\[:\]|\[://\]|:|\[:))", re.IGNORECASE),
        r"http\1",
        ("hxxp", "h**p", "h__p", "h[tt]p"),
    ),
    (re.compile(r"\bfxp(s?)(?=\s*(?:\[:\]|\[://\]|:))", re.IGNORECASE), r"ftp\1", ("fxp",)),
    (re.compile(r"\[\s*:\s*/\s*/\s*\]"), "://", ("[",)),
    (re.compile(r"\[\s*:\s*\]"), ":", ("[",)),
    (re.compile(r"\[\s*/\s*\]"), "/", ("[",)),
    (
        re.compile(r"\s*[\[({]\s*(?:\.|dot)\s*[\])}]\s*", re.IGNORECASE),
        ".",
        (".]", ".)", ".}", "dot]", "dot)", "dot}", ". ]", ". )", ". }", "dot ]", "dot )", "dot }"),
    ),
    (
        re.compile(r"\s*[\[({]\s*(?:@|at)\s*[\])}]\s*", re.IGNORECASE),
        "@",
        ("@]", "@)", "@}", "at]", "at)", "at}", "@ ]", "@ )", "@ }", "at ]", "at )", "at }"),
    ),
    # Escaped dots come from indicators pasted out of regular expressions or YARA rules.
    (re.compile(r"(?<=\w)\\\.(?=\w)"), ".", ("\\.",)),
]


def refang(text: str) -> str:
    """Return `text` with defanged indicators restored; text without any is returned unchanged."""
    lowered = text.lower()
    for pattern, replacement, triggers in _RULES:
        if any(trigger in lowered for trigger in triggers):
            text = pattern.sub(replacement, text)
    return text
