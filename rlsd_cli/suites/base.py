"""What every evaluation suite provides; the registry lives in suites/__init__.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..chat_format import Message
from ..errors import BadInputError
from ..fsutil import parse_json

HUB = "hub"  # `--data hub`: the hub dataset's current version instead of the embedded copy
EMBEDDED_DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "benchmarks"


@dataclass
class Item:
    key: Any  # the value of the suite's key field; `--responses` files name items by it
    messages: list[Message]
    record: dict[str, Any] = field(default_factory=dict)


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; a malformed line is an error naming it."""
    if not path.exists():
        raise BadInputError(f"{path}: no such file")
    if path.is_dir():
        raise BadInputError(f"{path}: is a folder; pass a .jsonl file")
    if not path.is_file():  # a FIFO or a device such as /dev/zero would block or never end
        raise BadInputError(f"{path}: not a regular file; pass a .jsonl file")
    rows = []
    try:
        with open(path, encoding="utf-8-sig") as f:  # a byte-order mark at the start is allowed, as in documents
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = parse_json(line)
                except ValueError as exc:
                    raise BadInputError(f"{path}:{number}: not valid JSON ({exc}); fix or delete that line") from None
                if not isinstance(obj, dict):
                    raise BadInputError(f"{path}:{number}: expected a JSON object per line")
                rows.append((number, obj))
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    if not rows:
        raise BadInputError(f"{path}: no records; write one JSON object per line")
    return rows


def require(record: dict[str, Any], field_name: str, where: str, kind: type | tuple = str) -> Any:
    value = record.get(field_name)
    if value is not None and not isinstance(value, kind):
        names = " or ".join({str: "text", int: "a number", float: "a number"}.get(k, k.__name__)
                            for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise BadInputError(f"{where}: '{field_name}' is {type(value).__name__} {json.dumps(value)[:40]}; "
                            f"it must be {' or '.join(dict.fromkeys(names.split(' or ')))}"
                            + (', such as "5" for text' if kind is str else ""))
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadInputError(f"{where}: missing or empty '{field_name}'; give every line a non-empty '{field_name}' "
                            "or delete that line")
    return value


class Suite:
    name = ""
    description = ""
    key_field = ""  # how items are named in data and in --responses files
    primary_metric = ""
    default_max_new_tokens = 256
    hub_dataset: tuple[str, str | None, str] | None = None  # (id, config, split) read with `--data hub`
    embedded_data = ""  # a file under rlsd_cli/data/benchmarks/, read when no --data is given
    relative_to_base = False  # a run's report also says how many of its base model's right answers it kept

    def parse(self, number: int, record: dict[str, Any], where: str) -> Item:
        raise NotImplementedError

    def score(self, item: Item, response: str) -> dict[str, Any]:
        raise NotImplementedError

    def aggregate(self, verdicts: list[dict[str, Any]]) -> dict[str, float]:
        raise NotImplementedError

    def data_file(self, data: Path | str | None) -> Path | None:
        """The file this suite reads: `--data`, else the embedded copy; None means the hub dataset."""
        if data is not None and str(data) == HUB:
            if self.hub_dataset is None:
                raise BadInputError(f"--data hub: the {self.name} suite has no hub dataset; pass --data PATH")
            return None
        if data is not None:
            return Path(data)
        if self.embedded_data:
            return EMBEDDED_DATA_DIR / self.embedded_data
        raise BadInputError(f"the {self.name} suite needs --data PATH (a JSONL file)")

    def load(self, data: Path | str | None) -> list[Item]:
        path = self.data_file(data)
        if path is None:
            return self._load_hub()
        items = [self.parse(number, record, f"{path}:{number}") for number, record in read_jsonl(path)]
        keys = [item.key for item in items]
        if len(set(map(str, keys))) != len(keys):
            raise BadInputError(f"{path}: duplicate '{self.key_field}' values; every item needs its own")
        return items

    def _load_hub(self) -> list[Item]:
        dataset_id, config, split = self.hub_dataset
        try:
            from datasets import load_dataset

            rows = load_dataset(dataset_id, config, split=split)
        except Exception as exc:
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            raise BadInputError(f"cannot load {dataset_id} from the Hugging Face hub ({reason}); leave out --data hub "
                                f"to use the embedded copy, or pass --data PATH") from None
        return [self.parse(i, dict(row), f"{dataset_id}[{i}]") for i, row in enumerate(rows, 1)]


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
