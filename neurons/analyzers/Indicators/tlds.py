"""Is a top-level domain real?  Used to tell `evil.com` from `setup.py` when pulling domains out of text.

The authoritative answer is the Public Suffix List; many Linux systems ship it (Debian package
`publicsuffix`), so it is used when present.  Without it, a built-in list of the generic TLDs seen in
practice plus every two-letter country code stands in, which is good enough offline.
"""

import functools
import os


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


PUBLIC_SUFFIX_FILES = (
    "/usr/share/publicsuffix/public_suffix_list.dat",
    "/etc/ssl/public_suffix_list.dat",
)

_GENERIC = _words(
    """
    com net org info biz edu gov mil int arpa name pro aero asia cat coop jobs mobi museum post tel
    travel xxx app dev page io ai co me tv cc ws fm gg ly to sh la xyz top online site club shop store
    tech space website live life world today news blog cloud email link click digital network systems
    solutions services agency media group company center support email host hosting security zone one
    global icu vip work win bid loan download stream review racing party date trade science cricket
    accountant faith men kim wang ren rest bar buzz fun fit run lol mom pw cyou sbs cfd quest monster
    beauty hair skin makeup lat uno best guru ninja rocks expert academy art design studio photo photos
    gallery bike cab cafe city codes computer exchange finance financial fund gold investments money
    capital cash credit bank insurance legal law lawyer health care clinic doctor dental energy solar
    eco green earth land estate properties realty house homes direct express delivery shipping parts
    tools tips social chat community forum wiki today events tickets travel tours voyage holiday casino
    bet poker games game play video movie film music audio radio show fashion style shoes jewelry watch
    london berlin paris nyc tokyo moscow amsterdam vegas wien koeln hamburg bayern google microsoft
    apple amazon windows office youtube gmail mov zip foo
    """
)

# Special-use names (RFC 6761, RFC 7686, ICANN .internal) never resolve on the public internet; lan, home
# and corp are not reserved but ICANN will not delegate them because so many private networks use them.
SPECIAL_USE = _words("local localhost test example invalid onion internal alt lan home corp")


@functools.lru_cache(maxsize=1)
def _public_suffix_tlds() -> frozenset[str] | None:
    for path in PUBLIC_SUFFIX_FILES:
        if not os.path.isfile(path):
            continue
        tlds = set()
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                rule = line.strip()
                if not rule or rule.startswith("//"):
                    continue
                label = rule.lstrip("!*.").rsplit(".", 1)[-1].lower()
                try:
                    tlds.add(label.encode("idna").decode("ascii"))
                except UnicodeError:
                    continue
        if tlds:
            return frozenset(tlds)
    return None


def is_known_tld(tld: str) -> bool:
    tld = tld.lower()
    known = _public_suffix_tlds()
    if known is not None:
        return tld in known
    return tld in _GENERIC or (len(tld) == 2 and tld.isalpha()) or tld.startswith("xn--")


def is_special_use(tld: str) -> bool:
    return tld.lower() in SPECIAL_USE
