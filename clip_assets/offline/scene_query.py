"""What a text query in the drawn scenes' words asks for, so the demo can say whether a result
shows it.

Reads a query such as "a picture of two red circles on a black background" and returns the
``scenes.Description`` of the attributes it names (count, colour, shape, background), the
same judgement ``Description.is_true_of`` makes of a scene. Words outside the scenes'
vocabulary are ignored; a query naming none of the attributes gives None. Writes nothing.
"""

from __future__ import annotations

import re

from clip_assets.offline.scenes import BACKGROUNDS, COLOURS, COUNT_WORDS, SHAPES, Description

_COUNTS = {word: count for count, word in COUNT_WORDS.items()}


def query_description(text: str) -> Description | None:
    """The attributes ``text`` names, as a ``Description`` with ``text`` as its text."""
    words = re.findall(r"[a-z]+", text.lower())
    count = colour = shape = background = None
    for word, following in zip(words, [*words[1:], ""], strict=True):
        if word in BACKGROUNDS and following == "background":
            background = word
        elif word in COLOURS:
            colour = word
        elif word in _COUNTS:
            count = _COUNTS[word]
        elif word.removesuffix("s") in SHAPES:
            shape = word.removesuffix("s")
    if (count, colour, shape, background) == (None, None, None, None):
        return None
    return Description(text, count, colour, shape, background)
