"""Drawn scenes whose captions are true of them: the demo's images and its model's training data.

A :class:`Scene` is a count of one coloured shape on a plain background ("three red circles on
a gray background"); :func:`draw_scene` paints it at any size. The shapes sit inside the
centred square of the picture, the region CLIP's resize-then-centre-crop keeps, so the caption
stays true of what the model sees, centred on a grid of that square (``GRID``); the background
fills the whole picture. Nothing is written
to disk. Guarantees: the same scene and seed give the same pixels; shapes never overlap and
never leave the centred square.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations, product

import numpy as np
from PIL import Image, ImageDraw

#: Shape colours as RGB; each scene jitters its colour a little around these.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 165, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 205, 30),
    "purple": (135, 50, 175),
    "orange": (245, 135, 25),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (244, 244, 244),
    "black": (18, 18, 18),
    "gray": (128, 128, 128),
}
SHAPES = ("circle", "square", "triangle")
COUNT_WORDS = {1: "one", 2: "two", 3: "three"}
#: Shapes are centred on the cells of this grid over the centred square: after the production
#: resize and centre crop to 224 px, a cell is one 32 px patch of a ViT-B-32-shaped model, so
#: each shape sits at the same place within its patches and a model trained for a minute can
#: tell a circle from a square.
GRID = 7
#: Every shape's radius, as a share of a cell: each fits inside its own patch, always at the
#: same place in it, which is what lets a tiny model learn shapes in a few hundred steps (with
#: sizes varying, it had not after a thousand).
SHAPE_RADIUS = 0.47
_JITTER = 18  # max per-channel colour jitter
_PLACEMENT_TRIES = 200


@dataclass(frozen=True)
class Scene:
    """``count`` shapes of one ``shape`` and ``colour`` on a ``background``."""

    count: int
    colour: str
    shape: str
    background: str

    def __post_init__(self) -> None:
        if (
            self.count not in COUNT_WORDS
            or self.colour not in COLOURS
            or self.shape not in SHAPES
            or self.background not in BACKGROUNDS
        ):
            raise ValueError(f"not a scene of this vocabulary: {self}")

    @property
    def caption(self) -> str:
        """The full description, e.g. ``three red circles on a gray background``."""
        return describe(**self.attributes()).text

    def attributes(self) -> dict[str, object]:
        """``count``, ``colour``, ``shape`` and ``background`` as keyword arguments."""
        return {
            "count": self.count,
            "colour": self.colour,
            "shape": self.shape,
            "background": self.background,
        }

    def descriptions(self) -> tuple[Description, ...]:
        """Ways a person might describe the scene or part of it, each true of it."""
        every = self.attributes()
        return tuple(
            describe(**{name: every[name] for name in named}, prefix=prefix)
            for named in TRAINING_PHRASINGS
            for prefix in ("", "a picture of ")
        )


@dataclass(frozen=True)
class Description:
    """A text about a scene and the attributes it names (None: not said, any value fits)."""

    text: str
    count: int | None = None
    colour: str | None = None
    shape: str | None = None
    background: str | None = None

    def is_true_of(self, scene: Scene) -> bool:
        """Whether every attribute the text names is the scene's."""
        return all(
            said is None or said == actual
            for said, actual in (
                (self.count, scene.count),
                (self.colour, scene.colour),
                (self.shape, scene.shape),
                (self.background, scene.background),
            )
        )


def describe(
    *,
    count: int | None = None,
    colour: str | None = None,
    shape: str | None = None,
    background: str | None = None,
    prefix: str = "",
) -> Description:
    """The words for the named attributes: ``describe(colour="red", shape="circle")`` is
    "red circles"; unnamed ones are left out ("three shapes on a black background")."""
    noun = shape or "shape"
    words = [
        COUNT_WORDS[count] if count is not None else None,
        colour,
        noun if count == 1 else f"{noun}s",
        f"on a {background} background" if background is not None else None,
    ]
    text = prefix + " ".join(w for w in words if w)
    return Description(text, count, colour, shape, background)


#: The attribute sets people name, from everything to a single word: the texts the demo model
#: is trained on (``Scene.descriptions``).
TRAINING_PHRASINGS = (
    ("count", "colour", "shape", "background"),
    ("count", "colour", "shape"),
    ("colour", "shape"),
    ("colour", "shape", "background"),
    ("count", "shape", "background"),
    ("count", "colour"),
    ("colour",),
    ("shape",),
)
#: Attribute combinations no training text names ("red shapes on a black background", "circles
#: on a gray background"), though every scene is drawn and each attribute is named in other
#: texts: queries of these test whether the model composes a caption it never read.
HELD_OUT_PHRASINGS = (("colour", "background"), ("shape", "background"))


def phrasing_queries(named: tuple[str, ...]) -> list[Description]:
    """A description for every combination of values of the attributes ``named``."""
    values = {"count": COUNT_WORDS, "colour": COLOURS, "shape": SHAPES, "background": BACKGROUNDS}
    return [
        describe(**dict(zip(named, combination, strict=True)))
        for combination in product(*(list(values[name]) for name in named))
    ]


def all_scenes() -> Iterator[Scene]:
    """Every scene of the vocabulary, in a fixed order."""
    for colour in COLOURS:
        for shape in SHAPES:
            for count in COUNT_WORDS:
                for background in BACKGROUNDS:
                    yield Scene(count, colour, shape, background)


def draw_scene(scene: Scene, width: int, height: int, seed: int = 0) -> Image.Image:
    """``scene`` as an RGB picture of ``width`` x ``height``; ``seed`` places and sizes shapes."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    fill = tuple(
        int(np.clip(c + rng.integers(-_JITTER, _JITTER + 1), 0, 255)) for c in COLOURS[scene.colour]
    )
    # Sizes leave room for three shapes in the square; each keeps a margin from the edges.
    for cx, cy, radius in _placements(scene.count, side, rng):
        _draw_shape(draw, scene.shape, left + cx, top + cy, radius, fill)
    return image


def _placements(count: int, side: int, rng: np.random.Generator) -> list[tuple[float, ...]]:
    """Centres and radii of ``count`` shapes in a ``side`` px square: centred in cells of a
    ``GRID`` x ``GRID`` grid (never the border ring) at least two cells apart, each inside its
    own cell (radius ``SHAPE_RADIUS`` of a cell), so shapes never touch."""
    cell = side / GRID
    inner = [(i, j) for i in range(1, GRID - 1) for j in range(1, GRID - 1)]
    for _ in range(_PLACEMENT_TRIES):
        cells = [inner[k] for k in rng.choice(len(inner), size=count, replace=False)]
        if all(max(abs(a[0] - b[0]), abs(a[1] - b[1])) >= 2 for a, b in combinations(cells, 2)):
            return [
                (
                    (i + 0.5) * cell,
                    (j + 0.5) * cell,
                    SHAPE_RADIUS * cell,
                )
                for i, j in cells
            ]
    raise RuntimeError(f"could not place {count} shapes on a {GRID}x{GRID} grid")


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill: tuple
) -> None:
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        half = r * 0.85  # about a circle's area, so size says nothing about the shape
        draw.rectangle((cx - half, cy - half, cx + half, cy + half), fill=fill)
    else:
        # Isosceles, filling about the same box as the circle, so size says nothing either.
        points = [(cx, cy - r), (cx + 0.95 * r, cy + 0.8 * r), (cx - 0.95 * r, cy + 0.8 * r)]
        draw.polygon(points, fill=fill)
