"""A 2-expert Mixture-of-Experts language model, trained with PyTorch and DeepSpeed.

Trains the same small byte-level transformer (every FFN a 2-expert top-1 MoE layer) on the Python
standard library two ways and prints the validation loss of each:

1. plain PyTorch with agentos' MoE kernels (checkpointed, resumable), then generates a few bytes
   and scores a snippet with that model;
2. DeepSpeed (``deepspeed.initialize``) with DeepSpeed's own MoE layer, experts sharded over
   2 gloo ranks (expert parallelism).

Run:  python examples/moe_two_experts.py [--steps 200] [--no-deepspeed]
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile

from agentos.tools.moe import generate, preset, score, train_moe, train_with_deepspeed


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` (default: the command line), train, print the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--max-bytes", type=int, default=2_000_000,
                        help="bytes of the standard library to read")
    parser.add_argument("--no-deepspeed", action="store_true", help="only the PyTorch run")
    args = parser.parse_args(argv)

    config = preset("two_experts").with_(n_layers=2, d_model=64, n_heads=4, d_ff=256,
                                         max_seq_len=args.seq_len)
    common = {"batch_size": args.batch_size, "seq_len": args.seq_len, "max_bytes": args.max_bytes}
    with tempfile.TemporaryDirectory() as tmp:
        result = train_moe(config, args.steps, out_dir=tmp, eval_every=max(1, args.steps // 4),
                           **common)
        print(f"pytorch    val loss {result.final_val_loss:.3f}  "
              f"routing {result.history[-1]['routing']}")
        print("sample:", repr(generate(tmp, "def ", max_new_tokens=60, temperature=0.5)))
        s = score(tmp, "import os\nprint(os.getcwd())\n")
        print(f"score: {s['bits_per_byte']:.2f} bits/byte, routing {s['routing']}")

    if args.no_deepspeed:
        return
    if importlib.util.find_spec("deepspeed") is None:
        print('deepspeed: not installed (pip install "agentos-kit[ml]")')
        return
    history = train_with_deepspeed(config, args.steps, moe_impl="deepspeed", world_size=2,
                                   eval_every=max(1, args.steps // 4), **common)
    print(f"deepspeed  val loss {history[-1]['val_loss']:.3f}  (2 ranks, expert parallel)")


if __name__ == "__main__":
    main()
