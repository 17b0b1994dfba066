"""Train your own ``nn.Sequential`` with Moonwalk on MNIST-1D.

The model is plain PyTorch; ``from_module`` gives a Moonwalk view of it that shares its
parameters, so the only change to an ordinary training loop is the line computing gradients.
At the end the script measures the peak memory of one training step with Moonwalk and with
plain autograd (``loss.backward()``) on the same model and batch.

    python examples/train_mnist1d.py                      # CUDA when available, else CPU
    python examples/train_mnist1d.py --depth 16 --channels 64 --epochs 10
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

import moonwalk_core.torch as mw
from moonwalk_core import data, methods
from moonwalk_core.torch._peak import peak_of_call


def make_model(depth: int, channels: int) -> nn.Sequential:
    """A causal conv net for (batch, 1, 40) sequences: what a user writes."""
    layers: list[nn.Module] = [nn.ConstantPad1d((2, 0), 0.0), nn.Conv1d(1, channels, 3)]  # stem
    for _ in range(depth):
        layers += [nn.ConstantPad1d((2, 0), 0.0), nn.Conv1d(channels, channels, 3),
                   nn.LeakyReLU(0.5)]
    layers += [nn.Conv1d(channels, channels, 8, stride=8), nn.LeakyReLU(0.5),  # 40 -> 5 steps
               nn.Flatten(), nn.Linear(channels * 5, 10)]
    return nn.Sequential(*layers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=8, help="causal conv layers")
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--samples", type=int, default=4000, help="MNIST-1D examples (80%% train)")
    parser.add_argument("--checkpoint-every", default="auto",
                        help='"auto" (restarts where round-off would grow past the tolerance), '
                             'an int, or "none"')
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory() as tmp:  # MNIST-1D is generated offline, in seconds
        d = data.load_mnist1d(data.generate_mnist1d(args.samples, out=Path(tmp) / "m.npz"))
    x, y = (torch.as_tensor(d["x"], device=device), torch.as_tensor(d["y"], device=device))
    x_test, y_test = (torch.as_tensor(d["x_test"], device=device),
                      torch.as_tensor(d["y_test"], device=device))

    model = make_model(args.depth, args.channels).to(device)
    moon = mw.from_module(model, (1, 40), init="orthogonal")  # shares model's parameters
    every = {"auto": "auto", "none": None}.get(args.checkpoint_every, None)
    if args.checkpoint_every not in ("auto", "none"):
        every = int(args.checkpoint_every)
    method = methods.Moonwalk(block_size=8, checkpoint_every=every)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = tqdm(range(args.epochs * (len(x) // args.batch)), desc="training (Moonwalk)")
    for step in steps:
        if step % (len(x) // args.batch) == 0:
            order = torch.randperm(len(x), device=device)
        i = order[(step % (len(x) // args.batch)) * args.batch:][:args.batch]
        opt.zero_grad()
        result = mw.backward(moon, F.cross_entropy, x[i], y[i], method=method)  # not .backward()
        opt.step()
        steps.set_postfix(loss=f"{float(result.loss):.3f}")
    with torch.no_grad():
        accuracy = float((model(x_test).argmax(-1) == y_test).float().mean())
    print(f"test accuracy after {args.epochs} epochs: {accuracy:.3f}")

    # peak memory of one training step on the same model and batch
    xb, yb = x[:args.batch], y[:args.batch]
    opt.zero_grad(set_to_none=True)  # both steps allocate their .grad inside the measurement
    moonwalk_peak, source, _ = peak_of_call(
        lambda: mw.backward(moon, F.cross_entropy, xb, yb, method=method), device)
    opt.zero_grad(set_to_none=True)
    autograd_peak, source_ag, _ = peak_of_call(
        lambda: F.cross_entropy(model(xb), yb).backward(), device)
    assert source == source_ag
    print(f"peak memory of one step, batch {args.batch}, depth {args.depth}, "
          f"{args.channels} channels ({source}):")
    print(f"  Moonwalk       {moonwalk_peak / 2**20:8.2f} MiB")
    print(f"  autograd       {autograd_peak / 2**20:8.2f} MiB")
    print(f"  Moonwalk / autograd = {moonwalk_peak / autograd_peak:.2f}")


if __name__ == "__main__":
    main()
