"""The options of a training run as the surfaces show them: TrainConfig's hyper-parameters (training/config.py)
and the cloud run options declared here, once, for the train-cloud CLI, the Training Forge's cloud panel and
the Forge's "copy as CLI" line."""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from .jobs.backends import cloud_providers
from .options import Option, add_arguments, given, options_of, to_argv


def _o(help: str, **meta: Any) -> Any:
    return field(default=None, metadata={"help": help, **meta})


@dataclass
class CloudRunOptions:
    """Where a cloud run goes and what it may cost; field names are nursery_train_cloud's keyword arguments.
    `providers` in the metadata says which providers read the option (absent = all)."""

    provider: str = field(default="vast", metadata={"help": "where the run goes", "choices": cloud_providers(),
                                                     "label": "Provider"})
    max_dph: Optional[float] = _o("max $/hour for the instance; offers above it are never rented (vast, runpod, "
                                  "replicate)", label="Max $/hour", min=0.0, step=0.05, format="%.2f",
                                  providers=("vast", "runpod", "replicate"))
    max_hours: Optional[float] = _o("stop (saving the checkpoint) and release the machine after this many hours",
                                    label="Max hours", min=0.0, step=0.5)
    max_cost: Optional[float] = _o("stop (saving the checkpoint) after spending this many $",
                                   label="Max $ for the run", min=0.0, step=0.5,
                                   providers=("vast", "runpod", "together", "replicate"))
    gpu: Optional[str] = _o("GPU name, e.g. 'RTX 4090' or RTX_4090 (vast, runpod)", label="GPU name (optional)",
                            providers=("vast", "runpod"))
    gpu_count: Optional[int] = _o("GPUs in the pod; training uses all of them (runpod; default 1)",
                                  label="GPUs", min=1, max=8, cli=("--gpus",), providers=("runpod",))
    offer_id: Optional[int] = _o("rent this offer (see list-offers)", label="Offer", min=1, providers=("vast",))
    min_gpu_ram_gb: Optional[float] = _o("GB of GPU memory needed (vast, runpod; default 8)",
                                         label="Min GPU memory (GB)", min=0.0, step=4.0, cli=("--min-gpu-ram",),
                                         providers=("vast", "runpod"))
    image: Optional[str] = _o("docker image (vast, runpod)", label="Docker image", providers=("vast", "runpod"))
    disk_gb: Optional[float] = _o("disk GB (vast, runpod; default 20)", label="Disk (GB)", min=0.0, cli=("--disk",),
                                  providers=("vast", "runpod"))
    ssh_server: Optional[str] = _o("a configured [ssh_servers.<name>] (ssh)", label="Server", cli=("--server",),
                                   providers=("ssh",))
    host: Optional[str] = _o("SSH host (ssh)", label="Host", providers=("ssh",))
    port: Optional[int] = _o("SSH port (ssh; default 22)", label="Port", min=1, max=65535, providers=("ssh",))
    user: Optional[str] = _o("SSH user (ssh; default root)", label="User", providers=("ssh",))
    key_path: Optional[str] = _o("private key file (ssh)", label="Private key file", providers=("ssh",))
    python: Optional[str] = _o("python on the remote machine (default python3)", label="Remote python",
                               cli=("--remote-python",))
    remote_root: Optional[str] = _o("working directory on the remote machine", label="Remote directory")
    trainer: Optional[str] = _o("Replicate trainer model owner/name; its base must be the run's base model "
                                "(replicate)", label="Trainer", providers=("replicate",))
    destination: Optional[str] = _o("Replicate model owner/name that receives the trained version (replicate; "
                                    "default <REPLICATE_OWNER>/nursery-<output>)", label="Destination model",
                                    providers=("replicate",))
    hardware: Optional[str] = _o("the trainer's Replicate hardware SKU as its train page names it, for the cost "
                                 "rate (replicate; default gpu-a40-large-8x)", label="Trainer hardware",
                                 providers=("replicate",))


def cloud_options(names: Sequence[str] | None = None) -> list[Option]:
    """CloudRunOptions' fields as Options (all, or those named, in that order). Raises KeyError for an unknown
    name."""
    opts = {o.name: o for o in options_of(CloudRunOptions)}
    return list(opts.values()) if names is None else [opts[n] for n in names]


def provider_option_names(provider: str, exclude: Sequence[str] = ()) -> list[str]:
    """The cloud run options that `provider` reads (metadata `providers` names it), in declaration order."""
    from dataclasses import fields

    return [f.name for f in fields(CloudRunOptions)
            if provider in (f.metadata.get("providers") or ()) and f.name not in exclude]


def add_run_arguments(parser, cloud: bool = False) -> None:
    """train-local's (and with cloud=True train-cloud's) generated options: every hyper-parameter of
    TrainConfig, then every cloud run option."""
    from .training.config import hyper_options

    add_arguments(parser, hyper_options())
    if cloud:
        add_arguments(parser, cloud_options())


def run_arguments(args) -> tuple[dict[str, Any], dict[str, Any]]:
    """(hyper-parameters, cloud options) given on a command line parsed by add_run_arguments."""
    from .training.config import hyper_options

    cloud = given(args, cloud_options()) if hasattr(args, "provider") else {}
    return given(args, hyper_options()), cloud


def train_command(dataset: str, base_model: str, output_name: str | None, hyper: dict,
                  defaults: dict | None = None, cloud: dict | None = None) -> str:
    """The command line that launches the same run (the dashboard's "copy as CLI"): train-local, or train-cloud
    when `cloud` (nursery_train_cloud's keyword arguments) is given; every hyper-parameter that differs from
    `defaults` (TrainConfig's defaults when None) as its canonical flag."""
    from .training.config import TrainConfig, hyper_options

    base = defaults if defaults is not None else TrainConfig().to_dict()
    argv = ["python", "-m", "nursery_core", "train-local" if cloud is None else "train-cloud", dataset,
            "--base-model", base_model]
    if output_name:
        argv += ["--output", output_name]
    if cloud is not None:
        argv += to_argv(cloud, cloud_options())
    argv += to_argv(hyper, hyper_options(), base)
    return shlex.join(argv)
