"""X-Robots-Tag opt-out: does an answer's header forbid us from using the image?

Reads the raw header values of one response; returns the directive that opts out (for the
reason ``x_robots_tag:<directive>``) or None. A directive counts when it is unscoped
(``X-Robots-Tag: noai``) or scoped to our user-agent token (``clip-assets: noai``); directives
scoped to other crawlers (``otherbot: noai``) do not apply to us.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Directives that withhold an image from AI training or from indexing (img2dataset's set,
#: plus ``none``, which Google defines as ``noindex, nofollow``).
OPT_OUT_DIRECTIVES = ("noai", "noimageai", "noindex", "noimageindex", "none")

# Directives that carry a value after a colon, so "name: value" is not a user-agent scope.
_VALUED = {"max-snippet", "max-image-preview", "max-video-preview", "unavailable_after"}


def opt_out_directive(values: Iterable[str], token: str) -> str | None:
    """First opt-out directive in the header ``values`` that applies to ``token``."""
    token = token.lower()
    for value in values:
        scope: str | None = None  # a "bot:" prefix scopes the rest of this header value
        for part in value.split(","):
            directive = part.strip().lower()
            name, sep, rest = directive.partition(":")
            if sep and name.strip() not in _VALUED:
                scope, directive = name.strip(), rest.strip()
            if scope not in (None, token):
                continue
            if directive in OPT_OUT_DIRECTIVES:
                return directive
    return None
