"""Class labels of a dataset's images for the semantic-consistency classifiers: the dataset's
own classes (MNIST digits), a CSV of classes by file name (`natural_labels.csv` beside the
ImageNet photos) or CelebA's attributes (`list_attr_celeba.txt`, one binary label each).

The files are read with the readers InterFaceGAN uses (`invgan.directions.label_files`);
images are matched to rows by file name, so the dataset may sit anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch

from invgan.directions.label_files import read_celeba_attributes, read_label_csv
from invgan.directions.labels import binary_labels
from invgan.utils.config_checks import ConfigValueError, check_arguments

# Label files that `source: auto` looks for beside the data, and the source each one is.
KNOWN_LABEL_FILES = {"list_attr_celeba.txt": "celeba_attributes", "natural_labels.csv": "csv"}
# Files named in an error about unlabelled images; the rest are counted.
LISTED_UNLABELLED = 5


@dataclass(frozen=True)
class LabelSettings:
    """Where the labels come from (`labels.*` in conf/semantic_consistency.yaml)."""

    source: Literal["auto", "dataset", "csv", "celeba_attributes"] = "auto"
    file: str | None = None
    file_column: str | None = None
    class_column: str = "class_index"
    name_column: str | None = "class_name"
    attributes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        check_arguments("labels", type(self), values)
        object.__setattr__(self, "attributes", tuple(str(a) for a in self.attributes))


class ClassLabels(NamedTuple):
    """Targets of the chosen train and test images: (N,) class indices (multi-class) or
    (N, K) 0 / 1 (multi-label, CelebA's attributes), with the K class names."""

    train: torch.Tensor
    test: torch.Tensor
    names: list[str]
    multilabel: bool
    source: str


def file_names(dataset: Any, indices: torch.Tensor, source: str) -> list[str]:
    """The file names (no folders) of the chosen images of a dataset read from files."""
    paths = getattr(dataset, "paths", None)
    if paths is None:
        raise ConfigValueError(
            f"labels.source={source}: the dataset ({type(dataset).__name__}) is not read from "
            "image files, so its images cannot be matched to a label file by name; use "
            "labels.source=dataset (its own classes) or data=<a folder dataset>"
        )
    return [Path(paths[int(i)]).name for i in indices]


def lookup(names: list[str], table: dict[str, Any], label_file: Path) -> list[Any]:
    """The label file's value for every image name; an image it does not list is an error."""
    missing = [name for name in names if name not in table]
    if missing:
        raise ConfigValueError(
            f"{len(missing)} of the {len(names)} images have no row in {label_file} (e.g. "
            f"{', '.join(missing[:LISTED_UNLABELLED])}): point labels.file at the label file "
            "of these images, or data_root / data.root at the images it lists"
        )
    return [table[name] for name in names]


def by_file_name(names: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """A label file's rows keyed by file name (its listed paths may include folders)."""
    return {Path(name).name: value for name, value in zip(names, values, strict=True)}


def sorted_classes(values: Sequence[str]) -> list[str]:
    """The distinct class values, numerically when they are all integers."""
    distinct = set(values)
    if all(value.lstrip("-").isdigit() for value in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def find_label_file(data_root: Path | None, sources: Sequence[str]) -> Path | None:
    """A known label file of one of `sources` in the data root, its `celeba/` subfolder or
    its parent."""
    if data_root is None:
        return None
    names = [name for name, source in KNOWN_LABEL_FILES.items() if source in sources]
    folders = (data_root, data_root / "celeba", data_root.parent)
    candidates = (folder / name for folder in folders for name in names)
    return next((path for path in candidates if path.is_file()), None)


def resolve_source(
    settings: LabelSettings, dataset: Any, data_root: Path | None
) -> tuple[str, Path | None]:
    """The label source and file `source: auto` stands for: the dataset's own classes when it
    has them, else a given or known label file beside the data."""
    if settings.source == "dataset":
        return "dataset", None
    given = Path(settings.file).expanduser() if settings.file else None
    if settings.source != "auto":
        found = given or find_label_file(data_root, [settings.source])
        if found is None:
            raise ConfigValueError(
                f"labels.source={settings.source} needs its label file: set labels.file=<path>"
            )
        return settings.source, found
    if given is None and getattr(dataset, "labels", None) is not None:
        return "dataset", None
    found = given or find_label_file(data_root, list(KNOWN_LABEL_FILES.values()))
    if found is None:
        raise ConfigValueError(
            f"labels.source=auto: the dataset has no class labels and none of "
            f"{', '.join(KNOWN_LABEL_FILES)} is in {data_root}, its celeba/ subfolder or its "
            "parent; set labels.file=<label file> and labels.source=csv or celeba_attributes"
        )
    kind = KNOWN_LABEL_FILES.get(found.name, "csv" if found.suffix == ".csv" else None)
    if kind is None:
        raise ConfigValueError(
            f"labels.file={found}: say what it is with labels.source=csv or celeba_attributes"
        )
    return kind, found


def dataset_labels(
    train: Any, test: Any, train_indices: torch.Tensor, test_indices: torch.Tensor
) -> ClassLabels:
    """The datasets' own class indices (MNIST digits: `labels`, kept beside the images)."""
    own = [getattr(dataset, "labels", None) for dataset in (train, test)]
    if any(labels is None for labels in own):
        raise ConfigValueError(
            "labels.source=dataset: the dataset has no class labels of its own; give a label "
            "file with labels.source=csv or celeba_attributes and labels.file=<path>"
        )
    train_labels, test_labels = (torch.as_tensor(labels, dtype=torch.long) for labels in own)
    count = int(max(train_labels.max(), test_labels.max())) + 1
    names = [str(index) for index in range(count)]
    return ClassLabels(
        train_labels[train_indices],
        test_labels[test_indices],
        names,
        False,
        "the dataset's own classes",
    )


def csv_labels(
    settings: LabelSettings,
    path: Path,
    train: Any,
    test: Any,
    train_indices: torch.Tensor,
    test_indices: torch.Tensor,
) -> ClassLabels:
    """One class per image from a CSV column (`labels.class_column`), named by
    `labels.name_column` when the file has it."""
    listed, values = read_label_csv(path, settings.class_column, settings.file_column)
    classes = sorted_classes(values)
    index = {value: position for position, value in enumerate(classes)}
    table = by_file_name(listed, [index[value] for value in values])
    names = list(classes)
    if settings.name_column:
        try:
            _, class_names = read_label_csv(path, settings.name_column, settings.file_column)
        except ValueError:  # no such column: the class values name themselves
            class_names = None
        if class_names is not None:
            named = dict(zip(values, class_names, strict=True))
            names = [named[value] for value in classes]
    targets = [
        torch.tensor(lookup(file_names(dataset, indices, "csv"), table, path), dtype=torch.long)
        for dataset, indices in ((train, train_indices), (test, test_indices))
    ]
    source = f"{path}, column {settings.class_column}"
    return ClassLabels(targets[0], targets[1], names, False, source)


def celeba_attribute_labels(
    settings: LabelSettings,
    path: Path,
    train: Any,
    test: Any,
    train_indices: torch.Tensor,
    test_indices: torch.Tensor,
) -> ClassLabels:
    """One binary label per attribute in `labels.attributes` from `list_attr_celeba.txt`."""
    if not settings.attributes:
        raise ConfigValueError(
            "labels.attributes is empty: list the CelebA attributes to classify, e.g. "
            "labels.attributes=[Smiling,Male,Young]"
        )
    names = [
        file_names(dataset, indices, "celeba_attributes")
        for dataset, indices in ((train, train_indices), (test, test_indices))
    ]
    columns: list[list[torch.Tensor]] = [[], []]
    for attribute in settings.attributes:
        listed, values = read_celeba_attributes(path, attribute)
        table = by_file_name(listed, binary_labels(values, None, attribute, str(path)).tolist())
        for split, split_names in enumerate(names):
            columns[split].append(torch.tensor(lookup(split_names, table, path)))
    targets = [torch.stack(split, dim=1).long() for split in columns]
    return ClassLabels(targets[0], targets[1], list(settings.attributes), True, str(path))


def class_labels(
    settings: LabelSettings,
    train: Any,
    test: Any,
    train_indices: torch.Tensor,
    test_indices: torch.Tensor,
    data_root: Path | None,
) -> ClassLabels:
    """The labels of the chosen images of the train and test datasets."""
    source, path = resolve_source(settings, train, data_root)
    if source == "dataset":
        return dataset_labels(train, test, train_indices, test_indices)
    if path is None or not path.is_file():  # None only for source=dataset, handled above
        raise FileNotFoundError(f"labels.file={path} does not exist")
    read = csv_labels if source == "csv" else celeba_attribute_labels
    return read(settings, path, train, test, train_indices, test_indices)
