"""The training itself: SFT (full or LoRA) with transformers' Trainer, DPO with trl's DPOTrainer.

Synchronous and heavy (torch, transformers, peft, trl are imported here only): the provider runs
``train`` in a thread, never on the event loop. ``TrainingEvents`` is how the thread talks back: it is
asked before every step whether to stop (a cancel), and told every logged step's metrics and every
saved checkpoint (the job's progress and checkpoint).

Steps and epochs: an epoch is ``min(max_steps_per_epoch, ceil(rows / (batch_size * accumulation)))``
optimizer steps, the job trains ``n_epochs`` of them, and a checkpoint (the trainer's state, which is
also a servable Hugging Face or PEFT directory) is saved at the end of each epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from lamina_post_training_huggingface.config import HuggingFacePostTrainingConfig
from lamina_post_training_huggingface.rows import format_prompt, preference_example, sft_example

log = structlog.get_logger(__name__)

_MLP = ["gate_proj", "up_proj", "down_proj"]


class TrainingEvents(Protocol):
    def stop_requested(self) -> bool: ...

    def logged(self, step: int, total: int, metrics: dict[str, float]) -> None: ...

    def saved(self, step: int, total: int, path: str, epoch: int, metrics: dict[str, float]) -> None: ...


@dataclass
class Plan:
    """What one job trains: from the job's params (JSON)."""

    method: str  # "sft" or "dpo"
    model_path: str
    output_dir: str
    training_config: dict[str, Any]
    lora: dict[str, Any] | None = None
    dpo: dict[str, Any] | None = None

    def steps(self, rows: int) -> tuple[int, int]:
        """(steps per epoch, steps in all)."""
        tc = self.training_config
        per_step = tc["data_config"]["batch_size"] * tc["gradient_accumulation_steps"]
        per_epoch = max(1, min(tc["max_steps_per_epoch"], math.ceil(rows / per_step)))
        return per_epoch, per_epoch * tc["n_epochs"]


def _device(config: HuggingFacePostTrainingConfig) -> str:
    import torch

    device = config.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device is {device!r} but torch sees no CUDA device; set device: cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device is 'mps' but torch sees no MPS device; set device: cpu")
    return device


def load_model(path: str, config: HuggingFacePostTrainingConfig) -> tuple[Any, Any]:
    """(model, tokenizer) from a local directory; never downloads."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = dict(config.model_specific_config)
    tokenizer = AutoTokenizer.from_pretrained(
        path, local_files_only=True, trust_remote_code=kwargs.get("trust_remote_code", False)
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32, **kwargs)
    return model, tokenizer


def _lora_config(lora: dict[str, Any], model: Any) -> Any:
    from peft import LoraConfig

    targets = list(lora["lora_attn_modules"])
    if lora.get("apply_lora_to_mlp"):
        targets += _MLP
    if lora.get("apply_lora_to_output"):
        targets.append("lm_head")  # SFT only: the provider refuses it for DPO (trl reads lm_head directly)
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    unknown = [t for t in targets if t not in names]
    if unknown:
        raise ValueError(
            f"algorithm_config: the model has no module named {', '.join(unknown)}; its linear layers are "
            f"{', '.join(sorted(n for n in names if n.endswith('proj') or n == 'lm_head'))}"
        )
    return LoraConfig(
        r=lora["rank"],
        lora_alpha=lora["alpha"],
        target_modules=targets,
        use_dora=bool(lora.get("use_dora")),
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
    )


def _optimizers(
    model: Any, tc: dict[str, Any], total_steps: int, config: HuggingFacePostTrainingConfig
) -> tuple:
    import torch
    from transformers import get_constant_schedule_with_warmup

    oc = tc["optimizer_config"]
    params = [p for p in model.parameters() if p.requires_grad]
    kind = oc["optimizer_type"]
    if kind == "adamw":
        optimizer = torch.optim.AdamW(params, lr=oc["lr"], weight_decay=oc["weight_decay"])
    elif kind == "adam":
        optimizer = torch.optim.Adam(params, lr=oc["lr"], weight_decay=oc["weight_decay"])
    else:
        optimizer = torch.optim.SGD(params, lr=oc["lr"], weight_decay=oc["weight_decay"])
    warmup = oc["num_warmup_steps"] or int(config.warmup_ratio * total_steps)
    return optimizer, get_constant_schedule_with_warmup(optimizer, warmup)


def _callback(events: TrainingEvents, total: int, per_epoch: int) -> Any:
    from transformers import TrainerCallback

    class Bridge(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if events.stop_requested():
                control.should_training_stop = True
                control.should_save = False
            return control

        def on_step_end(self, args, state, control, **kwargs):
            if events.stop_requested():
                control.should_training_stop = True
                control.should_save = False
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            metrics = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, int | float)}
            if "loss" in metrics or "rewards/margins" in metrics or "eval_loss" in metrics:
                events.logged(state.global_step, total, {**metrics, "epoch": state.epoch or 0.0})

        def on_save(self, args, state, control, **kwargs):
            path = str(Path(args.output_dir) / f"checkpoint-{state.global_step}")
            losses = [h for h in state.log_history if "loss" in h]
            evals = [h for h in state.log_history if "eval_loss" in h]
            metrics = {"train_loss": float(losses[-1]["loss"]) if losses else float("nan")}
            if evals:
                metrics["validation_loss"] = float(evals[-1]["eval_loss"])
            epoch = max(1, math.ceil(state.global_step / per_epoch))
            events.saved(state.global_step, total, path, epoch, metrics)

    return Bridge()


def _arguments(
    plan: Plan, config: HuggingFacePostTrainingConfig, per_epoch: int, total: int, validate: bool
) -> dict:
    tc = plan.training_config
    efficiency = tc.get("efficiency_config") or {}
    return {
        "output_dir": plan.output_dir,
        "per_device_train_batch_size": tc["data_config"]["batch_size"],
        "per_device_eval_batch_size": tc["data_config"]["batch_size"],
        "gradient_accumulation_steps": tc["gradient_accumulation_steps"],
        "max_steps": total,
        "logging_steps": config.logging_steps,
        "save_strategy": "steps",
        "save_steps": per_epoch,
        "save_total_limit": config.save_total_limit,
        "eval_strategy": "steps" if validate else "no",
        "eval_steps": per_epoch if validate else None,
        "report_to": [],
        "use_cpu": config.device == "cpu",
        "dataloader_num_workers": config.dataloader_num_workers,
        "dataloader_pin_memory": config.dataloader_pin_memory,
        "gradient_checkpointing": bool(
            config.gradient_checkpointing or efficiency.get("enable_activation_checkpointing")
        ),
        "disable_tqdm": True,
        "remove_unused_columns": False,
        "seed": 42,
        "data_seed": 42,
        "save_only_model": False,
    }


def _shuffle_sampler(trainer: Any, shuffle: bool) -> None:
    if not shuffle:
        import torch

        trainer._get_train_sampler = lambda *a, **k: torch.utils.data.SequentialSampler(trainer.train_dataset)


def _sft_features(
    rows: list[dict], plan: Plan, tokenizer: Any, config: HuggingFacePostTrainingConfig
) -> list[dict]:
    dc = plan.training_config["data_config"]
    fmt = dc["data_format"]
    on_input = bool(dc.get("train_on_input"))
    out = []
    for index, row in enumerate(rows):
        prompt, answer = sft_example(row, fmt, index)
        prompt_ids = tokenizer(
            format_prompt(tokenizer, prompt, config.chat_template), add_special_tokens=False
        )["input_ids"]
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids = (prompt_ids + answer_ids)[: config.max_seq_length]
        labels = ((prompt_ids if on_input else [-100] * len(prompt_ids)) + answer_ids)[
            : config.max_seq_length
        ]
        out.append({"input_ids": ids, "labels": labels})
    return out


def _collate(pad_id: int) -> Any:
    import torch

    def collate(batch: list[dict]) -> dict:
        width = max(len(b["input_ids"]) for b in batch)
        ids = [b["input_ids"] + [pad_id] * (width - len(b["input_ids"])) for b in batch]
        labels = [b["labels"] + [-100] * (width - len(b["labels"])) for b in batch]
        mask = [[1] * len(b["input_ids"]) + [0] * (width - len(b["input_ids"])) for b in batch]
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask),
        }

    return collate


def train(
    plan: Plan,
    rows: list[dict],
    validation_rows: list[dict] | None,
    config: HuggingFacePostTrainingConfig,
    events: TrainingEvents,
    resume_from: str | None = None,
) -> dict[str, Any]:
    """Train; return a small summary ({steps, stopped, final_checkpoint})."""
    import torch
    import transformers

    import datasets

    # Progress bars would go to the server's stderr for every tokenized dataset and saved checkpoint.
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    _device(config)
    model, tokenizer = load_model(plan.model_path, config)
    per_epoch, total = plan.steps(len(rows))
    if plan.method == "sft":
        trainer = _sft_trainer(plan, rows, validation_rows, model, tokenizer, config, per_epoch, total)
    else:
        trainer = _dpo_trainer(plan, rows, validation_rows, model, tokenizer, config, per_epoch, total)
    _shuffle_sampler(trainer, bool(plan.training_config["data_config"]["shuffle"]))
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints every log to stdout; events get them instead
    trainer.add_callback(_callback(events, total, per_epoch))
    trainer.train(resume_from_checkpoint=resume_from)
    return {"steps": trainer.state.global_step, "total_steps": total, "stopped": events.stop_requested()}


def _sft_trainer(plan, rows, validation_rows, model, tokenizer, config, per_epoch, total) -> Any:
    from transformers import Trainer, TrainingArguments

    if plan.lora:
        from peft import get_peft_model

        model = get_peft_model(model, _lora_config(plan.lora, model))
    features = _sft_features(rows, plan, tokenizer, config)
    validation = _sft_features(validation_rows, plan, tokenizer, config) if validation_rows else None
    if validation is not None:
        limit = plan.training_config.get("max_validation_steps")
        if limit:
            validation = validation[: limit * plan.training_config["data_config"]["batch_size"]]
    args = TrainingArguments(**_arguments(plan, config, per_epoch, total, validation is not None))
    return Trainer(
        model=model,
        args=args,
        train_dataset=features,
        eval_dataset=validation,
        data_collator=_collate(tokenizer.pad_token_id),
        processing_class=tokenizer,
        optimizers=_optimizers(model, plan.training_config, total, config),
    )


def _dpo_trainer(plan, rows, validation_rows, model, tokenizer, config, per_epoch, total) -> Any:
    from trl import DPOConfig, DPOTrainer

    from datasets import Dataset

    def pairs(source: list[dict]) -> Any:
        data = {"prompt": [], "chosen": [], "rejected": []}
        for index, row in enumerate(source):
            prompt, chosen, rejected = preference_example(row, index)
            data["prompt"].append(format_prompt(tokenizer, prompt, config.chat_template))
            data["chosen"].append(chosen)
            data["rejected"].append(rejected)
        return Dataset.from_dict(data)

    dpo = plan.dpo or {}
    if plan.lora:
        from peft import get_peft_model

        model = get_peft_model(model, _lora_config(plan.lora, model))
    arguments = _arguments(plan, config, per_epoch, total, bool(validation_rows))
    arguments.update(
        beta=dpo.get("beta", config.dpo_beta) * dpo.get("reward_scale", 1.0),
        loss_type=[dpo.get("loss_type") or config.dpo_loss_type],
        label_smoothing=dpo.get("epsilon", 0.0),
        max_length=config.max_seq_length,
        dataset_num_proc=None,
    )
    return DPOTrainer(
        model=model,
        ref_model=None,  # LoRA: the base with adapters off; full: trl copies the starting model
        args=DPOConfig(**arguments),
        train_dataset=pairs(rows),
        eval_dataset=pairs(validation_rows) if validation_rows else None,
        processing_class=tokenizer,
        optimizers=_optimizers(model, plan.training_config, total, config),
    )
