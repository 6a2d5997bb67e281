"""Which passwords may be set: long enough, not too long, and not guessable.

No composition rules (ASVS 5.0 6.2, NIST SP 800-63B): length plus a strength estimate.
zxcvbn (bundled frequency lists: 30,000 leaked passwords, English words, names, keyboard
patterns, sequences, dates; nothing is downloaded) estimates how many guesses a password
needs; one that needs fewer than 10^10 (score below 4) is refused with the estimator's reason.
Score 3 would let season-and-year passwords through ("Summer2024!!", "Letmein2024!!"), the
first ones a password sprayer tries.
A password may not contain the user's e-mail address or name either: those are the first
guesses of anyone who knows whose account it is.
"""

from __future__ import annotations

import re
import threading

MIN_LENGTH = 12
MAX_LENGTH = 256  # ASVS asks for at least 64
MIN_SCORE = 4  # zxcvbn: "very unguessable", 10^10 guesses or more
# zxcvbn's time grows steeply with length (10 s for some 256-character inputs); it reads the
# first 64 characters (a password that is long enough to go past them rarely needs more).
ESTIMATED_CHARS = 64
# Words anyone guessing a password for this service would try first.
SERVICE_WORDS = ("studio", "studio platform", "compliance", "evidence", "audit")

# zxcvbn keeps each call's user inputs in a module-level dictionary: two threads estimating
# at once would see each other's. Estimates take milliseconds and are rare (passwords are
# set, not checked, here), so they take turns.
_estimator_lock = threading.Lock()

_NOT_ALNUM = re.compile(r"[\W_]+")


def _letters(text: str) -> str:
    return _NOT_ALNUM.sub("", text.casefold())


def _estimate(password: str, user_inputs: list[str]) -> tuple[int, str, list[str]]:
    """zxcvbn's score, its warning about the weakest part, and which of `user_inputs` it found."""
    # Imported on first use: its word lists cost 13 MB and 0.1 s, which a process that never
    # sets a password need not pay.
    from zxcvbn import zxcvbn
    from zxcvbn.feedback import get_feedback

    with _estimator_lock:
        result = zxcvbn(password[:ESTIMATED_CHARS], user_inputs=user_inputs,
                        max_length=ESTIMATED_CHARS)
    score = result["score"]
    sequence = result["sequence"]
    # zxcvbn explains scores up to 2 only; ask for the reason of a 3 as if it were a 2.
    warning = ""
    if score < MIN_SCORE:
        warning = get_feedback(2 if score > 2 else score, sequence)["warning"]
    found = [str(m.get("matched_word", "")) for m in sequence
             if m.get("dictionary_name") == "user_inputs"]
    return score, warning, found


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:]


def password_problem(password: str, *, email: str | None = None,
                     name: str | None = None) -> str | None:
    """Why `password` may not be set for the user with this e-mail and name (None: it may)."""
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters long"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters long"
    folded = _letters(password)
    local = email.partition("@")[0] if email else ""
    if email and (email.casefold() in password.casefold()
                  or (len(_letters(local)) >= 4 and _letters(local) in folded)):
        return "must not contain your e-mail address"
    if name and len(_letters(name)) >= 4 and _letters(name) in folded:
        return "must not contain your name"
    inputs = [*SERVICE_WORDS]
    if email:
        inputs += [email, local, *_NOT_ALNUM.split(local)]
    if name:
        inputs += [name, *name.split()]
    score, warning, personal = _estimate(password, [word for word in inputs if word])
    if score >= MIN_SCORE:
        return None
    if "common" in warning and "password" in warning:
        return "too common: it, or something very like it, is on lists of leaked passwords"
    if personal:
        whose = ("the name of this service" if personal[0].casefold() in SERVICE_WORDS
                 else "your e-mail address or name")
        return f"too predictable: it is built on {whose}; add another word or two"
    reason = f"{_sentence(warning)}; " if warning else ""
    return f"too predictable: {reason}add another word or two (uncommon words are better)"
