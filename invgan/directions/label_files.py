"""Attribute labels from files beside a folder of images: a CSV (`file,<attribute columns>`)
or CelebA's `list_attr_celeba.txt` (+1 / -1 columns)."""

from __future__ import annotations

import csv
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import torch

from invgan.directions.labels import (
    LabelledImages,
    balanced_subset,
    binary_labels,
    check_on_missing,
)
from invgan.image_inputs import load_images

# Missing files named in an error; the rest are counted.
LISTED_MISSING = 5


def read_label_csv(path: Path, attribute: str, file_column: str | None) -> tuple[list, list]:
    """(file names, attribute values) of a CSV with a header row; the file column defaults
    to the first one."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
        columns = list(rows[0].keys()) if rows else []
    if not rows:
        raise ValueError(f"{path} has no rows under its header: list one image per row")
    file_column = file_column or columns[0]
    for name, role in ((file_column, "file_column"), (attribute, "attribute")):
        if name not in columns:
            raise ValueError(
                f"{role} {name!r} is not a column of {path}; its columns are {', '.join(columns)}"
            )
    return [row[file_column] for row in rows], [row[attribute] for row in rows]


def read_celeba_attributes(path: Path, attribute: str) -> tuple[list, list]:
    """(file names, +1 / -1 values) of one attribute of CelebA's `list_attr_celeba.txt`:
    the image count, the attribute names, then one row per image (name and one value per
    attribute), all whitespace-separated."""
    lines = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    if len(lines) < 2 or len(lines[0]) != 1 or not lines[0][0].isdigit():
        raise ValueError(
            f"{path} is not in CelebA's list_attr_celeba.txt format: expected the image count "
            "on line 1, the attribute names on line 2, then '<file> <+1/-1 per attribute>' rows"
        )
    names, rows = lines[1], lines[2:]
    if attribute not in names:
        raise ValueError(
            f"attribute {attribute!r} is not in {path}; its attributes are {', '.join(names)}"
        )
    bad = [i + 3 for i, row in enumerate(rows) if len(row) != len(names) + 1]
    if bad or len(rows) != int(lines[0][0]):
        raise ValueError(
            f"{path} is malformed: line 1 declares {lines[0][0]} images and {len(rows)} rows "
            f"follow; rows need a file and {len(names)} values"
            + (f" (lines {bad[:LISTED_MISSING]} do not)" if bad else "")
        )
    column = names.index(attribute) + 1
    return [row[0] for row in rows], [row[column] for row in rows]


def _existing(
    names: list[str], values: list[str], folder: Path, source: Path, on_missing: str
) -> tuple[list[Path], list[str]]:
    """The listed files found under `folder`, with their values; missing ones fail or are
    skipped."""
    paths = [folder / name for name in names]
    present = [path.is_file() for path in paths]
    missing = [name for name, ok in zip(names, present, strict=True) if not ok]
    if missing and on_missing == "fail":
        raise FileNotFoundError(
            f"{len(missing)} of the {len(names)} images listed in {source} are missing under "
            f"{folder}, e.g. {', '.join(missing[:LISTED_MISSING])}: point images= at the "
            "folder that holds them, or set on_missing=skip to use only the images present"
        )
    kept = [i for i, ok in enumerate(present) if ok]
    return [paths[i] for i in kept], [values[i] for i in kept]


class _LabelFile(ABC):
    """A label file beside a folder of images; subclasses read (names, values)."""

    def __init__(
        self,
        path: str | Path,
        attribute: str,
        images: str | Path,
        positive: Sequence[str] | None,
        max_per_class: int | None,
        seed: int,
        on_missing: str,
    ) -> None:
        check_on_missing(on_missing)
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise FileNotFoundError(f"label file {self.path} does not exist")
        self.attribute = attribute
        self.images = Path(images).expanduser()
        self.positive = positive
        self.max_per_class = max_per_class
        self.seed = seed
        self.on_missing = on_missing

    @abstractmethod
    def read(self) -> tuple[list, list]:
        """(file names relative to the image folder, attribute values)."""

    def load(self, channels: int, resolution: int) -> LabelledImages:
        """A class-balanced draw of the labelled images, resized to the generator's size."""
        names, values = self.read()
        paths, values = _existing(names, values, self.images, self.path, self.on_missing)
        source = f"{self.path} (images under {self.images})"
        labels = binary_labels(values, self.positive, self.attribute, source)
        chosen = balanced_subset(labels, self.max_per_class, self.attribute, source, self.seed)
        images = torch.cat([load_images(paths[i], channels, resolution) for i in chosen])
        name = self.attribute if self.positive is None else f"{self.attribute} in {self.positive}"
        return LabelledImages(images, labels[chosen], name)


class CsvLabels(_LabelFile):
    """Labels from a CSV with a header: a file column (the first by default; paths relative
    to `images`, by default the CSV's folder) and attribute columns. A binary column (1/0,
    1/-1, true/false) is used as it is; otherwise `positive` lists the values that count."""

    def __init__(
        self,
        csv: str | Path,
        attribute: str,
        images: str | Path | None = None,
        positive: Sequence[str] | None = None,
        file_column: str | None = None,
        max_per_class: int | None = 500,
        seed: int = 0,
        on_missing: str = "fail",
    ) -> None:
        folder = Path(csv).expanduser().parent if images is None else images
        super().__init__(csv, attribute, folder, positive, max_per_class, seed, on_missing)
        self.file_column = file_column

    def read(self) -> tuple[list, list]:
        """(file names, values of the attribute column)."""
        return read_label_csv(self.path, self.attribute, self.file_column)


class CelebAAttributes(_LabelFile):
    """Labels from CelebA's `list_attr_celeba.txt`; images default to the official
    `img_align_celeba` folder beside it."""

    def __init__(
        self,
        attributes_file: str | Path,
        attribute: str,
        images: str | Path | None = None,
        max_per_class: int | None = 500,
        seed: int = 0,
        on_missing: str = "fail",
    ) -> None:
        path = Path(attributes_file).expanduser()
        folder = path.parent / "img_align_celeba" if images is None else images
        super().__init__(path, attribute, folder, None, max_per_class, seed, on_missing)

    def read(self) -> tuple[list, list]:
        """(file names, +1 / -1 values of the attribute)."""
        return read_celeba_attributes(self.path, self.attribute)
