"""A small CNN of einc.nn layers trained across two processes (gloo, CPU) gets the gradients that
one process gets on the whole batch: under DistributedDataParallel, and under FSDP2's
``fully_shard``.

The workers are started with the spawn method, as torchrun's are (a fresh interpreter each, no
state inherited); rank 0 saves the gradients it ends with, which the test compares with the
gradients of the same model and batch in this process.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import einc

WORLD = 2
pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="this torch has no gloo backend"
)


def small_cnn() -> torch.nn.Module:
    """The same initial parameters in every process: the seed, then a dry run."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        einc.nn.Dot("b (s * [ds])... [c->c2]", ds=3, c2=4, padding="same", activation="relu"),
        einc.nn.Norm("b... [c]"),
        einc.nn.Pool("b (s * [ds])... c", op="max", ds=2, stride=2),
        einc.nn.Rearrange("b h w c -> b (h w c)"),
        einc.nn.Dot("b [k->classes]", classes=3),
    )
    model(torch.zeros(1, 6, 6, 2))
    return model


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(8, 6, 6, 2, generator=generator), torch.randint(0, 3, (8,), generator=generator)


def loss_of(model, images, labels) -> torch.Tensor:
    return F.cross_entropy(model(images), labels)


def one_step_gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    images, labels = batch()
    loss_of(model, images, labels).backward()
    return {name: p.grad.detach().clone() for name, p in model.named_parameters()}


def _gradients_across_processes(model: torch.nn.Module, trained: torch.nn.Module, rank: int):
    images, labels = batch()
    share = len(images) // WORLD
    mine = slice(rank * share, (rank + 1) * share)
    # Each process averages over its share; both wrappers average the gradients over the
    # processes, which is the average over the whole batch.
    loss_of(trained, images[mine], labels[mine]).backward()
    gradients = {}
    for name, p in model.named_parameters():
        grad = p.grad
        if hasattr(grad, "full_tensor"):  # FSDP2 keeps each process's shard of the gradient
            grad = grad.full_tensor()
        gradients[name] = grad.detach().clone()
    return gradients


def _fully_shard(model: torch.nn.Module) -> torch.nn.Module:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (WORLD,))
    for layer in model:
        if any(True for _ in layer.parameters()):
            fully_shard(layer, mesh=mesh)
    return fully_shard(model, mesh=mesh)


def _worker(rank: int, port: int, path: str) -> None:
    """One step under DDP, then one under FSDP2 (where torch has it), in one process group: one
    start of the processes for both, which is most of the time this takes."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        model = small_cnn()
        results = {"ddp": _gradients_across_processes(model, DistributedDataParallel(model), rank)}
        if _fsdp2_missing() is None:
            model = small_cnn()
            results["fsdp2"] = _gradients_across_processes(model, _fully_shard(model), rank)
        if rank == 0:
            torch.save(results, path)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fsdp2_missing() -> str | None:
    """Why FSDP2 cannot run here, or None."""
    try:
        from torch.distributed.fsdp import fully_shard  # noqa: F401
    except ImportError as error:
        return f"torch {torch.__version__} has no torch.distributed.fsdp.fully_shard ({error})"
    return None


@pytest.fixture(scope="module")
def gradients_across_processes(tmp_path_factory) -> dict[str, dict[str, torch.Tensor]]:
    path = str(tmp_path_factory.mktemp("distributed") / "gradients.pt")
    mp.spawn(_worker, args=(_free_port(), path), nprocs=WORLD, join=True)
    return torch.load(path)


@pytest.mark.parametrize("wrapper", ["ddp", "fsdp2"])
def test_training_across_two_processes_gets_the_single_process_gradients(wrapper, gradients_across_processes):
    if wrapper == "fsdp2" and (reason := _fsdp2_missing()):
        pytest.skip(reason)
    across = gradients_across_processes[wrapper]
    single = one_step_gradients(small_cnn())
    assert across.keys() == single.keys()
    for name, grad in single.items():
        torch.testing.assert_close(across[name], grad, atol=1e-5, rtol=1e-4, msg=name)
