"""Training throughput: our path (fabula.train.sft) against a plain TRL SFTTrainer script with
TRL's default settings, on the same data and the same LoRA, in one run (a ratio, not a timed test).

    .venv/bin/python benchmarks/training.py [--model smollm2] [--steps 12] [--organism FOLDER]
    python3 benchmarks/training.py --build 0.5b --steps 30     # GPU: benchmarks/gpu.sh

Ours: examples packed into full blocks (no padding), in the precision `--precision` names (default
auto: bf16 on a GPU, on a CPU the faster of float32 and bf16, timed), no activation checkpointing,
on a CPU the model's own loss (TRL's chunked fused LM head halves CPU throughput; kept on GPUs). TRL defaults: one
example per row padded to the batch's longest, float32 on a CPU, its chunked loss.
With --organism it also prints full fine-tuning tokens/s of the organism's small model both ways.
With --build it builds a Qwen2.5-shaped model from a config (no download; random weights, a
small BPE: throughput does not depend on what the weights know) and prints model FLOPs
utilisation on a GPU: 6 x parameters x tokens/s (the usual convention, though LoRA skips the
weight gradients of the frozen base, so its real work is nearer 4 x) over the bf16 dense peak.
Figures are steady-state: the first steps (compilation of kernels, allocation) are dropped.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def _corpus(n: int):
    from fabula.config import ORGANISM_FAMILIES
    from fabula.organism.arms import arm_stream, chat_stream

    stories, chats = arm_stream("stories-b2", 0, ORGANISM_FAMILIES, (0, 0)), chat_stream(0)
    return [next(stories) if i % 2 else next(chats) for i in range(n)]


class Clock:
    """Trainer callback: time from the end of step `skip` to the last step, and tokens in between."""

    def __init__(self, skip: int):
        from transformers import TrainerCallback

        clock = self

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == skip:
                    clock.start, clock.seen = time.perf_counter(), clock.tokens
                clock.end = time.perf_counter()

        self.callback, self.tokens, self.start, self.seen, self.end = Callback(), 0, 0.0, 0, 0.0

    def rate(self) -> float:
        return (self.tokens - self.seen) / max(self.end - self.start, 1e-9)


def ours(model_path: str, examples, steps: int, lora: bool, batch: int, block: int, precision: str) -> float:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fabula.config import Training
    from fabula.train.data import encode, pack
    from fabula.train.run import choose_training_precision
    from fabula.train.sft import LoraSettings, sft

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    choice = choose_training_precision(precision, model, LoraSettings() if lora else None, block)
    print(f"  ours: {choice.describe()}")
    tokens, labels = pack([encode(tok, e) for e in examples], block, tok.eos_token_id)
    stamps = []
    settings = Training(token_budget=steps * batch * block, method="lora" if lora else "full", lr=2e-4,
                        batch_size=batch, block_size=block, warmup_steps=2, save_every=10**6,
                        precision=choice.precision)
    sft(model, tok, tokens, labels, settings, Path(tempfile.mkdtemp()),
        lora=LoraSettings() if lora else None, progress=lambda step, total, loss: stamps.append(time.perf_counter()))
    skip = 3
    return (len(stamps) - skip) * batch * block / (stamps[-1] - stamps[skip - 1])


def trl_defaults(model_path: str, examples, steps: int, lora: bool) -> float:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from fabula.train.sft import LoraSettings

    tok = AutoTokenizer.from_pretrained(model_path)
    rows = [{"text": e} if isinstance(e, str) else {"messages": e} for e in examples]
    # TRL wants one schema per dataset: documents as single-turn text, chats as messages
    texts = [{"text": r["text"] if "text" in r else tok.apply_chat_template(r["messages"], tokenize=False)}
             for r in rows]
    clock = Clock(skip=3)
    args = SFTConfig(output_dir=tempfile.mkdtemp(), max_steps=steps, report_to="none", save_strategy="no",
                     use_cpu=not torch.cuda.is_available(), disable_tqdm=True)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model_path), args=args,
                         train_dataset=Dataset.from_list(texts), processing_class=tok,
                         peft_config=LoraSettings().peft_config() if lora else None, callbacks=[clock.callback])
    original = trainer.training_step

    def counted(model, inputs, *rest, **kw):  # count real (non-padding) tokens
        clock.tokens += int(inputs["attention_mask"].sum()) if "attention_mask" in inputs else inputs["input_ids"].numel()
        return original(model, inputs, *rest, **kw)

    trainer.training_step = counted
    trainer.train()
    return clock.rate()


SHAPES = {  # name -> (layers, width, heads, kv heads, mlp width, vocab): Qwen2.5 0.5B and 1.5B
    "0.5b": (24, 896, 14, 2, 4864, 151936),
    "1.5b": (28, 1536, 12, 2, 8960, 151936),
}
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense, from the vendors' data sheets


def build(shape: str, folder: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from fabula.organism.tokenizer import CHATML

    layers, width, heads, kv, mlp, vocab = SHAPES[shape]
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    texts = [e if isinstance(e, str) else " ".join(m["content"] for m in e) for e in _corpus(200)]
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=4096, special_tokens=[
        "<|endoftext|>", "<|im_start|>", "<|im_end|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = CHATML
    config = Qwen2Config(vocab_size=vocab, hidden_size=width, intermediate_size=mlp, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv, tie_word_embeddings=True,
                         max_position_embeddings=4096, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def mfu(model_path: str, tokens_per_second: float) -> str:
    from transformers import AutoConfig, AutoModelForCausalLM

    if not torch.cuda.is_available():
        return ""
    with torch.device("meta"):
        params = sum(p.numel() for p in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_path)).parameters())
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    return f"  MFU {6 * params * tokens_per_second / peak:.1%} (6N, N={params / 1e6:.0f}M, {name})" if peak else ""


def main() -> None:
    from fabula.backends.smollm2 import resolve_model

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--organism", help="an organism model folder (e.g. a cached chat model) for full FT")
    parser.add_argument("--build", choices=list(SHAPES), help="build a model of this shape instead of --model")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"], help="ours")
    a = parser.parse_args()
    torch.manual_seed(0)
    examples = _corpus(1200 if a.build else 400)
    path = str(build(a.build, Path(tempfile.mkdtemp()))) if a.build else resolve_model(a.model)
    cuda = torch.cuda.is_available()
    from fabula.train.precision import device_description

    device = device_description()
    batch, block = (16, 1024) if cuda else (4, 512)
    print(f"device: {device}; model {a.build or a.model}; LoRA r16 all-linear; {a.steps} steps each; "
          f"ours {batch} x {block} packed")
    mine = ours(path, examples, a.steps, lora=True, batch=batch, block=block, precision=a.precision)
    print(f"LoRA  ours         {mine:9,.0f} tokens/s{mfu(path, mine)}", flush=True)
    theirs = trl_defaults(path, examples, a.steps, lora=True)
    print(f"LoRA  TRL defaults {theirs:9,.0f} tokens/s{mfu(path, theirs)}")
    print(f"ratio ours / TRL defaults: {mine / theirs:.2f}x")
    if a.organism:
        mine = ours(a.organism, examples, a.steps, lora=False, batch=4, block=640, precision=a.precision)
        theirs = trl_defaults(a.organism, examples, a.steps, lora=False)
        print(f"full FT organism  ours {mine:8,.0f} tokens/s   TRL defaults {theirs:8,.0f} tokens/s   "
              f"ratio {mine / theirs:.2f}x")


if __name__ == "__main__":
    main()
