"""What ``facenet demo`` runs, as configs, and the command lines that build the same configs.

The demo builds its configs directly; the lines it prints (``--dry-run``, and before each stage)
are rendered from those configs, so a user who runs them gets exactly what the demo ran.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facenet_cli.config import (
    AlignConfig,
    DemoConfig,
    TrainConfig,
    ValidateConfig,
    demo_dir,
)
from facenet_cli.data.demo_faces import DemoPaths, demo_paths
from facenet_cli.demo.settings import (
    align_config,
    logs_dir,
    models_dir,
    train_config,
)

# The positional arguments of each command, in order; every other field is an option.
ARGUMENTS: dict[str, tuple[str, ...]] = {
    "align": ("input_dir", "output_dir"),
    "validate": ("lfw_dir", "model"),
}


def _option(name: str, value: Any) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag if value else "--no-" + flag[2:]]
    if isinstance(value, tuple):
        return [flag, *(str(v) for v in value)]
    return [flag, str(value)]


def command_line(name: str, config: Any) -> str:
    """``facenet <name> ...`` that builds ``config``: its arguments, then every option that
    differs from the command's default."""
    defaults = type(config)()
    positional = ARGUMENTS.get(name, ())
    args = [str(getattr(config, field)) for field in positional]
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name in positional or value is None or value == getattr(defaults, field.name):
            continue
        args.extend(_option(field.name, value))
    return shlex.join(["facenet", name, *args])


@dataclass(frozen=True)
class DemoPlan:
    """What the demo runs: its folders and the configs of its stages."""

    paths: DemoPaths
    align_train: AlignConfig
    align_test: AlignConfig
    train: TrainConfig

    @property
    def logs_dir(self) -> Path:
        return logs_dir(self.paths)

    @property
    def models_dir(self) -> Path:
        return models_dir(self.paths)

    @property
    def epochs(self) -> int:
        assert self.train.max_nrof_epochs is not None
        return self.train.max_nrof_epochs

    def validate(self, run_dir: Path | str) -> ValidateConfig:
        """The ``validate`` stage for the model trained in ``run_dir``."""
        return ValidateConfig(
            lfw_dir=self.paths.aligned_test, model=Path(run_dir), lfw_pairs=self.paths.pairs
        )

    def align_lines(self) -> list[str]:
        return [command_line("align", c) for c in (self.align_train, self.align_test)]

    def train_line(self) -> str:
        return command_line("train", self.train)

    def lines(self, run_dir: Path | str) -> list[str]:
        """The four commands, in order."""
        validate = command_line("validate", self.validate(run_dir))
        return [*self.align_lines(), self.train_line(), validate]


def make_plan(config: DemoConfig) -> DemoPlan:
    """The demo's folders and configs for ``config`` (nothing is run or written).

    Raises:
        InputError: an unknown ``--loss`` (``settings.train_options``).
    """
    root = Path(config.out).expanduser().resolve() if config.out is not None else demo_dir()
    paths = demo_paths(root)
    return DemoPlan(
        paths=paths,
        align_train=align_config(paths.raw_train, paths.aligned_train),
        align_test=align_config(paths.raw_test, paths.aligned_test),
        train=train_config(paths, config.minutes, config.seed, config.loss),
    )


def print_dry_run(plan: DemoPlan) -> None:
    """The four commands, runnable as they are once ``RUN`` names the run ``train`` wrote."""
    for line in plan.lines(plan.models_dir / "RUN"):
        print(line)
    print(
        f"# RUN: the run name `facenet train` prints; watch it with: facenet board {plan.logs_dir}"
    )
