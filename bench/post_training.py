"""Training throughput on this CPU: tokens/s of LoRA vs full fine-tuning, and DPO, on tiny random Llamas.

``hatch run dev:bench post-training [--epochs N] [--runs N] [--sizes tiny small medium]
[--rows-times N]``. In-process: the provider's own training function
(``lamina_post_training_huggingface.training.train``, what a job's training process runs) on a model
built by ``build_tiny_llama`` (random weights, an in-process BPE tokenizer), 24 instruct rows
(``--rows-times N``: repeated N times, so an epoch, and its checkpoint, comes every 6 x N steps), batch
4, AdamW; checkpoints are saved every epoch as in a job. Each case runs ``--runs`` times after an
unrecorded warm-up; the median is shown. Tokens are the rows' tokens (prompt and answer, no padding)
times the epochs; DPO counts prompt + chosen + rejected. Wall time includes the model load and the
checkpoints, so it is what a job takes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

SIZES = {
    "tiny": {"hidden_size": 64, "layers": 2, "heads": 4},
    "small": {"hidden_size": 256, "layers": 4, "heads": 8},
    "medium": {"hidden_size": 512, "layers": 8, "heads": 8},
}
QA = [
    (f"What is item {i} called?", f"Item {i} is called {name}.")
    for i, name in enumerate(
        [
            "alpha",
            "bravo",
            "charlie",
            "delta",
            "echo",
            "foxtrot",
            "golf",
            "hotel",
            "india",
            "juliet",
            "kilo",
            "lima",
        ]
        * 2
    )
]


class _Quiet:
    def stop_requested(self) -> bool:
        return False

    def logged(self, step: int, total: int, metrics: dict) -> None:
        return None

    def saved(self, step: int, total: int, path: str, epoch: int, metrics: dict) -> None:
        return None


def _run(
    method: str, lora: bool, model: Path, out: Path, epochs: int, rows_times: int = 1
) -> tuple[float, int, int]:
    from transformers import AutoTokenizer

    from lamina_post_training_huggingface.config import HuggingFacePostTrainingConfig
    from lamina_post_training_huggingface.rows import format_prompt
    from lamina_post_training_huggingface.training import Plan, train

    tokenizer = AutoTokenizer.from_pretrained(model)
    config = HuggingFacePostTrainingConfig()
    qa = QA * rows_times
    if method == "sft":
        rows = [{"input_query": q, "expected_answer": a} for q, a in qa]
        tokens = sum(
            len(tokenizer(format_prompt(tokenizer, [{"role": "user", "content": q}], "")).input_ids)
            + len(tokenizer(a).input_ids)
            + 1
            for q, a in qa
        )
    else:
        rows = [{"prompt": q, "chosen": a, "rejected": "I do not know."} for q, a in qa]
        tokens = sum(
            len(tokenizer(format_prompt(tokenizer, [{"role": "user", "content": q}], "")).input_ids)
            + len(tokenizer(a).input_ids)
            + len(tokenizer("I do not know.").input_ids)
            + 2
            for q, a in qa
        )
    plan = Plan(
        method=method,
        model_path=str(model),
        output_dir=str(out),
        training_config={
            "n_epochs": epochs,
            "max_steps_per_epoch": 1000,
            "gradient_accumulation_steps": 1,
            "data_config": {
                "dataset_id": "bench",
                "batch_size": 4,
                "shuffle": False,
                "data_format": "instruct",
            },
            "optimizer_config": {
                "optimizer_type": "adamw",
                "lr": 3e-3,
                "weight_decay": 0.0,
                "num_warmup_steps": 0,
            },
        },
        lora={
            "lora_attn_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
            "apply_lora_to_mlp": True,
            "apply_lora_to_output": False,
            "rank": 16,
            "alpha": 32,
        }
        if lora
        else None,
        dpo={"beta": 0.1} if method == "dpo" else None,
    )
    start = time.perf_counter()
    summary = train(plan, rows, None, config, _Quiet())
    return time.perf_counter() - start, tokens * epochs, summary["steps"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench post-training", description=__doc__)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"], choices=sorted(SIZES))
    parser.add_argument("--runs", type=int, default=3, help="runs of each; the median is shown")
    parser.add_argument(
        "--rows-times",
        type=int,
        default=1,
        help="the 24 rows repeated N times (an epoch, and so a checkpoint, every 6 x N steps)",
    )
    parser.add_argument(
        "--latency",
        action="store_true",
        help="instead: interactive latency idle vs while a job trains (bench/post_training_latency.py)",
    )
    parser.add_argument("--requests", type=int, default=2000, help="--latency: requests per phase")
    parser.add_argument(
        "--runs-in",
        nargs="+",
        default=["thread", "subprocess"],
        choices=["thread", "subprocess"],
        help="--latency: where the job trains (the provider's runs_in)",
    )
    args = parser.parse_args(argv)
    if args.latency:
        from bench.post_training_latency import latency

        return latency(args.runs_in, args.requests)
    import torch

    from lamina_post_training_huggingface.tiny_model import build_tiny_llama

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}, Python {sys.version.split()[0]}"
    )
    print("| model | params | method | steps | tokens | wall s | tokens/s |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            model = build_tiny_llama(Path(tmp) / size, [f"{q} {a}" for q, a in QA] * 3, **SIZES[size])
            from transformers import AutoModelForCausalLM

            params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(model).parameters())
            _run("sft", True, model, Path(tmp) / f"{size}-warmup", 1)  # imports, first allocations
            for method, lora, label in [
                ("sft", False, "SFT full"),
                ("sft", True, "SFT LoRA r16"),
                ("dpo", True, "DPO LoRA r16"),
            ]:
                walls = []
                for run in range(args.runs):
                    wall, tokens, steps = _run(
                        method, lora, model, Path(tmp) / f"{size}-{label}-{run}", args.epochs, args.rows_times
                    )
                    walls.append(wall)
                wall = statistics.median(walls)
                cells = [
                    size,
                    f"{params / 1e6:.2f} M",
                    label,
                    steps,
                    tokens,
                    f"{wall:.1f}",
                    f"{tokens / wall:,.0f}",
                ]
                print("| " + " | ".join(str(c) for c in cells) + " |")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
