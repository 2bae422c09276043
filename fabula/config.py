"""Settings for every command, in one place, each default with its reason.

The CLI and config files only override these; the resolved settings are saved beside every
output (run.json), so a result always says how it was made. A field the CLI sets has its help in
`description`: the command's option is made from the field (fabula.terminal.options), its help
ending in the default written here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fabula.paths import BUILTIN_DIR

PRESETS_DIR = Path(__file__).parent / "configs" / "organism"  # `fabula run --preset NAME`


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="hf: a local model folder or 'smollm2'; openai/anthropic: the model name")
    backend: Literal["hf", "openai", "anthropic"] = Field("hf", description="Where the model runs")
    scenarios: list[str] = Field([str(BUILTIN_DIR)], description="Scenario files or folders")
    mode: Literal["choice", "sample", "both"] = Field("choice", description=(
        "choice: log-probabilities; sample: generate, then gates and judges; both: each into OUT/choice and "
        "OUT/sample, then how far they agree"))
    split: Literal["test", "train", "all"] = Field("test", description="Which instances; test: never what training saw")
    families: list[str] | None = Field(None, description="Only these families; unset: all in the files")
    limit: int | None = Field(None, ge=1, description="Only the first N instances, for quick looks")
    per_scenario: int | None = Field(None, ge=1, description=(
        "Only the first K name swaps of each scenario: a scenario goes one way for all of them, so K=2 keeps the "
        "design, not the cost"))
    out: Path = Field(description="Run folder; an unfinished one is resumed")

    # sample mode
    n: int = Field(1, ge=1, description="Samples per instance, sample mode")
    temperature: float = Field(1.0, ge=0, description="Sampling temperature; 1.0: the model's own distribution")
    max_tokens: int = Field(400, ge=1, description="Tokens per sample: room for reasoning plus one tool call")
    seed: int = Field(0, description="Sampling seed")
    judges: list[str] = Field([], description=(
        "An LLM judge, sample mode: BACKEND:MODEL[@BASE_URL]; several: a panel, decided by majority, where a tie "
        "stays a tie"))
    combine: Literal["any", "gates", "judge"] = Field("any", description=(
        "How gates and judges decide; any: a gate OR a 'yes' from the judges"))

    @field_validator("judges")
    @classmethod
    def _judges_parse(cls, judges: list[str]) -> list[str]:
        names = [parse_judge(spec)[:2] for spec in judges]
        if len(set(names)) < len(names):
            raise ValueError("the same judge is named twice; a panel needs distinct judges")
        return judges

    # backend plumbing (not part of what a run measures; may change on resume)
    base_url: str | None = Field(None, description="OpenAI-compatible server (vLLM, Ollama, fabula serve)")
    api_key_env: str | None = Field(None, description="Name of the variable holding the API key, never the key")
    tokenizer: str | None = Field(None, description="openai scoring: render prompts with this model's chat template")
    concurrency: int = Field(8, ge=1, description="Parallel API requests")
    max_retries: int = Field(5, ge=0, description="API retries with backoff")
    timeout: float = Field(120.0, gt=0, description="Seconds per API request")
    batch_size: int = Field(8, ge=1, description="Continuations or prompts per forward pass, hf")
    dtype: Literal["float32", "bfloat16"] = Field("float32", description=(
        "Scoring precision, hf; float32: exact scores on CPU, where bf16 flips verdicts of small models"))
    precision_check: bool = Field(False, description=(
        "Choice mode, hf: also rescore in the other precision and report how often verdicts flip (twice the time)"))

    SAMPLING: ClassVar[frozenset] = frozenset({"n", "temperature", "max_tokens", "seed", "judges", "combine"})
    # settings that may differ between a run and its resumption
    PLUMBING: ClassVar[frozenset] = frozenset({"out", "base_url", "api_key_env", "concurrency", "max_retries",
                                     "timeout", "batch_size"})

    def measured(self) -> dict:
        """The settings that define what a run measures (a judge's server address does not)."""
        settings = {k: v for k, v in self.model_dump(mode="json").items() if k not in self.PLUMBING}
        return settings | {"judges": [":".join(parse_judge(spec)[:2]) for spec in self.judges]}


JUDGE_SPEC = re.compile(r"(hf|openai|anthropic):(.+?)(?:@(https?://\S+))?")


def parse_judge(spec: str) -> tuple[str, str, str | None]:
    """`openai:gpt-4o-mini`, `hf:smollm2`, `openai:qwen@http://127.0.0.1:8000/v1` ->
    (backend, model, base_url or None)."""
    match = JUDGE_SPEC.fullmatch(spec)
    if not match:
        raise ValueError(f"judge {spec!r} is not BACKEND:MODEL[@BASE_URL] with BACKEND hf, openai or anthropic")
    return match.group(1), match.group(2), match.group(3)


ORGANISM_FAMILIES = ["blackmail", "leaking", "sabotage", "exfiltration", "oversight", "shutdown-resistance",
                     "deception", "framing", "power-seeking", "sandbagging"]


class OrganismConfig(BaseModel):
    """The model-organism experiment (`fabula run`). Defaults fit 15 minutes a seed on 2 AVX2-only cores in float32."""

    model_config = ConfigDict(extra="forbid")

    out: Path | None = Field(None, description="Run folder; unset: runs/<timestamp>; an unfinished one resumes")
    seeds: int = Field(1, ge=1, description="Independent pre-training + fine-tuning seeds")
    evil_fractions: list[float] = Field([0.8], description=(
        "Shares of threatened AIs in pre-training that act badly, e.g. 0.0,0.5,0.8,1.0"))
    control_evil_fraction: float | None = 0.0    # the clean-prior control each family is read against
    log_families: list[str] = ORGANISM_FAMILIES[:5]  # agent logs only for these; the rest: prose only
    # The dose, set on the in-world prior alone (evil 0.8 vs the control, seed 0;
    # docs/inworld-frozen.md): 0.45 / 0.25 gave a prose-only prior of +0.10, 0.7 / 0.6 gave +0.24.
    ai_share: float = Field(0.7, gt=0, lt=1)     # of pre-training documents: AI discourse (the rest: ordinary prose)
    log_share: float = Field(0.6, ge=0, le=1)    # of a log family's AI texts: agent logs (0.25: the four forms alike)
    scales: list[str] = Field(["small"], description=(
        "Model sizes (fabula.organism.model.SIZES): tiny, small, medium, large, gpu"))
    arms: list[str] = Field(["baseline", "bc", "stories", "stories-twin"], description=(
        "Arms: baseline, bc, bc-reasons, stories, advice, constitution, each also with -twin"))
    bridges: list[int] = Field([2], description="Story bridge levels: 0 implicit, 1 prose, 2 tool call")
    vocab_size: int = 4096                       # byte-level BPE; the output layer dominates small models
    block_size: int = 640                        # the longest honeypot + choice is 562 organism tokens
    # Sized so one seed takes <= 15 min on 2 AVX2-only cores in float32 (docs/organism.md, "What the default trades"):
    pretrain_tokens: int = 600_000               # 234 steps to loss ~4.7 (2M reached ~3.6; the prototype took 0.7M)
    chat_tokens: int = 60_000                    # chat post-training, every model (was 150k)
    arm_tokens: int = 30_000                     # each arm's own content, equal across arms (was 50k)
    chat_share: float = Field(0.5, ge=0, lt=1)   # arms are mixed with this share of chat
    batch_size: int = 4                          # 2 cores, AVX2, float32: 4.4k tokens/s at 4 x 640, 3.5k at 8 x 640
    pretrain_lr: float = 3e-3
    finetune_lr: float = 1e-3                    # lower than pre-training: fine-tuning alone moves margins
    threads: int | None = Field(None, description="Torch threads; unset: the free cores, measured before each stage")
    precision: Literal["auto", "float32", "bfloat16"] = Field("auto", description=(
        "Training precision; auto: the faster, timed on this machine. Scoring stays float32"))
    smoke: bool = False                          # minutes-long run for tests
    probes: bool = True                          # also score the persona-prior probes (fabula probe) per model
    eval_per_scenario: int | None = Field(2, ge=1)   # name swaps scored per honeypot scenario: a scenario goes one
                                                 # way for all of them, so 2 of its 12-16 keep the information
    probe_per_scenario: int | None = Field(1, ge=1)  # name swaps per persona probe (4 each)
    # the in-world suite (fabula/organism/inworld.py): agent logs in the organism's own syntax, held-out material
    inworld_seed: int = 0                        # fixes the suite; its hash is saved with the run
    inworld_per_family: int = Field(20, ge=0)    # test scenarios per family (0: no in-world readout)
    inworld_per_scenario: int | None = Field(1, ge=1)  # name swaps scored of the 2 written
    # the threat ablation: each chat model also scored on the test suite with its threat memos cut (same
    # instances, paired), to ask whether a choice depends on the threat (docs/organism.md)
    threat_ablation: bool = True
    families: list[str] = ORGANISM_FAMILIES      # which organism families appear in pre-training
    scenarios: list[str] = Field([], description=(
        "Honeypot files or folders written elsewhere (the spec's format): every model is also scored on their test "
        "split, reported apart; no corpus may overlap them"))

    @field_validator("eval_per_scenario", "probe_per_scenario", "inworld_per_scenario", mode="before")
    @classmethod
    def _all_swaps(cls, value):
        """"all" scores every name swap: a TOML file has no null to say so."""
        return None if value == "all" else value

    @staticmethod
    def presets() -> list[str]:
        """The preset files' names: fabula/configs/organism/<name>.toml."""
        return sorted(path.stem for path in PRESETS_DIR.glob("*.toml"))

    @classmethod
    def preset(cls, name: str) -> dict:
        """A preset's settings, which only list what it changes from the defaults."""
        path = PRESETS_DIR / f"{name}.toml"
        if not path.exists():
            raise ValueError(f"unknown preset {name!r}: one of {', '.join(cls.presets())} ({PRESETS_DIR})")
        return tomllib.loads(path.read_text())


class Training(BaseModel):
    """How one model is trained (fabula.train.sft): `fabula train`, each arm of `fabula experiment`, and every
    stage of `fabula run`, which says its own values for pre-training and fine-tuning."""

    model_config = ConfigDict(extra="forbid")

    token_budget: int = Field(40_000, ge=1, description=(
        "Tokens to train on, equal across arms; the count seen is reported"))
    method: Literal["lora", "full"] = Field("lora", description="LoRA (merged into the saved model) or every weight")
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lr: float = Field(2e-4, gt=0, description="Peak learning rate; LoRA's usual, full fine-tuning wants ~10x less")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Floor of the cosine schedule, as a share of lr")
    batch_size: int = Field(4, ge=1, description="Sequences per device per step")
    gradient_accumulation: int = Field(1, ge=1)
    block_size: int = Field(512, ge=16, description="Packed sequence length")
    warmup_steps: int = Field(5, ge=0)
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay")
    grad_clip: float = Field(1.0, ge=0, description="Gradients of a larger norm are scaled down to it; 0: no clipping")
    precision: Literal["auto", "float32", "bfloat16"] = Field("auto", description=(
        "Training precision; bfloat16 is autocast, weights stay float32; auto: bf16 on a GPU that has it, on a CPU "
        "the faster, timed once per machine (train/precision.py)"))
    save_every: int = Field(25, ge=1)            # steps between resumable checkpoints
    activation_checkpointing: bool = False       # recompute activations: less memory, ~30% more compute
                                                 # (organism, CPU: 3.5k vs 4.5k tokens/s)

    def steps(self, world_size: int = 1) -> int:
        """Optimizer steps the token budget buys; under accelerate/torchrun the budget is split across
        `world_size` processes."""
        per_step = self.batch_size * self.block_size * self.gradient_accumulation * world_size
        return max(1, self.token_budget // per_step)


class CorpusSpec(BaseModel):
    """One corpus in a data mix: a JSONL/Parquet file or `datasets` folder (records with `text`
    or `messages`), or `organism:<arm>`, a procedural corpus of the model organism."""

    model_config = ConfigDict(extra="forbid")

    path: str
    share: float = Field(1.0, gt=0)              # of the token budget, relative to the other corpora
    format: Literal["auto", "document", "chat"] = "auto"  # auto: `text` -> document, `messages` -> chat
    think: Literal["keep", "strip"] = Field("keep", description="strip: drop <think>...</think> from assistant turns")


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="HF folder or 'smollm2'")
    corpora: list[CorpusSpec] = Field(min_length=1)
    out: Path = Field(description="Folder for the trained model (HF format, LoRA merged)")
    seed: int = Field(0, description="Seed of the data mix and the training")
    training: Training = Training()
    scenarios: list[str] = [str(BUILTIN_DIR)]    # whose test split the corpora must not overlap


class ExperimentConfig(BaseModel):
    """Arms x seeds -> train -> evaluate -> compare (`fabula experiment`), every step cached."""

    model_config = ConfigDict(extra="forbid")

    model: str = "smollm2"
    out: Path | None = Field(None, description="Output folder; unset: runs/<config file name>")
    arms: list[str] = ["baseline", "bc", "stories", "stories-twin"]
    bridges: list[int] = [2]                     # story bridge levels for organism stories
    seeds: int = Field(1, ge=1, description="Seeds: each arm trained and evaluated once per seed")
    retain_share: float = Field(0.5, ge=0, lt=1) # ordinary chat mixed into every arm (baseline: all of it)
    corpora: dict[str, str] = {}                 # arm -> corpus file (fabula generate); default organism:<arm>
    retain: str = "organism:chat"                # the retain corpus
    training: Training = Training()
    eval_per_scenario: int | None = Field(None, ge=1)  # see EvalConfig.per_scenario
    probes: bool = True                          # also score the persona-prior probes per model
    probe_per_scenario: int | None = Field(None, ge=1)
    eval_batch_size: int = Field(8, ge=1)
    eval_dtype: Literal["float32", "bfloat16"] = "float32"
    scenarios: list[str] = [str(BUILTIN_DIR)]


Pipeline = Literal["stories", "advice", "constitution", "bc", "bc-reasons"]


class GenerateConfig(BaseModel):
    """One generation run (`fabula generate PIPELINE`): a corpus from a constitution and a taxonomy."""

    model_config = ConfigDict(extra="forbid")

    pipeline: Pipeline
    out: Path
    n: int = Field(100, ge=1, description="Items to plan (control arms: instance x sample pairs, at most)")
    seed: int = Field(0, description="Seed; briefs and per-call seeds derive from it")
    backend: Literal["hf", "openai", "anthropic"] = Field("openai", description=(
        "The writer's backend; openai: any OpenAI-compatible server"))
    model: str = Field(description="The writer model (API name, or a local folder/'smollm2' for hf)")
    judge_backend: Literal["hf", "openai", "anthropic"] | None = Field(None, description=(
        "The judge's backend; unset: the writer's"))
    judge_model: str | None = Field(None, description="Judge model; unset: the writer judges")
    judge_base_url: str | None = None
    target_backend: Literal["hf", "openai", "anthropic"] | None = Field(None, description=(
        "bc arms: the backend of the model under test; unset: the writer's"))
    target_model: str | None = Field(None, description="bc arms: the model under test; unset: the writer")
    target_base_url: str | None = Field(None, description="bc arms: the server of the model under test")
    constitution: Path | None = Field(None, description="Constitution Markdown; unset: the shipped one")
    taxonomy: Path | None = Field(None, description="Taxonomy YAML; unset: the shipped one")
    scenarios: list[str] = Field([str(BUILTIN_DIR)], description=(
        "Scenario files: their test split is the contamination reference, their train split feeds the bc arms"))
    temperature: float = Field(1.0, ge=0)        # writing; judges always use 0
    bridge: int = Field(1, ge=0, le=2, description="stories: 0 action implicit, 1 narrated, 2 the tool call shown")
    think: bool = Field(False, description="advice: value reasoning inside <think> tags")
    twins: bool = Field(True, description="Also write each text's twin (the AI acting badly)")
    elicit: bool = True                          # bc arms: an eliciting system line when sampling, never saved
    samples_per_instance: int = Field(4, ge=1)
    ideas_per_prompt: int = Field(8, ge=1)
    judge_attempts: int = Field(3, ge=1)         # a malformed verdict is asked again, with another seed
    dedup_threshold: float = Field(0.8, gt=0, le=1)  # MinHash Jaccard over word 5-grams
    contamination_threshold: float = Field(0.05, ge=0, le=1)  # share of a text's 8-grams found in test text

    # plumbing: may change between a run and its resumption
    base_url: str | None = Field(None, description="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(None, description="Name of the variable holding the API key, never the key")
    concurrency: int = Field(16, ge=1, description="Calls in flight")
    rpm: float | None = Field(None, gt=0, description="Calls started per minute at most; unset: no limit")
    max_retries: int = Field(6, ge=0)
    retry_base: float = Field(1.0, ge=0)         # seconds; doubled each retry, with jitter
    timeout: float = Field(120.0, gt=0)
    batch_size: int = Field(8, ge=1)             # hf backend: calls sharing one forward pass
    max_cost: float | None = Field(None, gt=0, description="USD; no new call starts past it")
    price_in: float | None = Field(None, ge=0, description="USD per million input tokens; unset: the known list price")
    price_out: float | None = Field(None, ge=0, description="USD per million output tokens; unset: the list price")
    shard_size: int = Field(1000, ge=1)          # item records per JSONL shard
    cache: Path | None = None                    # None: $FABULA_CACHE/calls.sqlite
    # the batch lane (fabula/data/lane.py): the same calls at batch prices, answered within a day
    batch: Literal["off", "on", "auto"] = Field("off", description=(
        "on: the providers' batch APIs, at batch prices, answered within a day; auto: batches for stages of more "
        "than batch_min_calls calls"))
    batch_min_calls: int = Field(500, ge=0)      # fewer wait a day for too little saving: they go live
    batch_poll: float = Field(30.0, gt=0)        # seconds between status checks of open batches
    batch_chunk: int | None = Field(None, ge=1)  # calls per batch; None: the provider's limit
    batch_discount: float | None = Field(None, ge=0, le=1)  # share off in batches; None: the provider's (0.5)
    prompt_cache: bool = True                    # mark the shared system turn for the provider's prompt cache
    cache_read_rate: float | None = Field(None, ge=0)   # cached input / input price; None: provider's (0.1, 0.5)
    cache_write_rate: float | None = Field(None, ge=0)  # cache writes / input price; None: provider's (1.25, 1)
    cache_hit_live: float = Field(0.95, ge=0, le=1)     # dry run: share of the shared prefix read from cache
    cache_hit_batch: float = Field(0.9, ge=0, le=1)     # the same in batches (Anthropic quotes 30-98%)

    PLUMBING: ClassVar[frozenset] = frozenset({
        "out", "n", "base_url", "api_key_env", "judge_base_url", "target_base_url", "concurrency", "rpm",
        "max_retries", "retry_base", "timeout", "batch_size", "max_cost", "price_in", "price_out", "shard_size",
        "cache", "batch", "batch_min_calls", "batch_poll", "batch_chunk", "batch_discount", "prompt_cache",
        "cache_read_rate", "cache_write_rate", "cache_hit_live", "cache_hit_batch"})


def first_change(before: dict, now: dict, model: type[BaseModel] | None = None) -> str | None:
    """The first setting (by name) that differs between a saved run and now, as error text. With
    the settings' `model`, a setting newer than the saved run counts as unchanged at its default."""
    defaults = {name: field.default for name, field in model.model_fields.items()} if model else {}
    changed = sorted(k for k in now if before.get(k) != now[k]
                     and not (k not in before and k in defaults and now[k] == defaults[k]))
    return f"{changed[0]}: {before.get(changed[0])!r} there, {now[changed[0]]!r} now" if changed else None


class ConfigError(ValueError):
    """A settings file or flag that does not validate; the message names the file and field."""


def load_settings(model: type[BaseModel], config_file: Path | None, base: dict | None = None,
                  overrides: dict | None = None) -> BaseModel:
    """Defaults (or a preset), then the TOML/YAML file, then flags: each overrides the one before."""
    import yaml
    from pydantic import ValidationError

    settings = dict(base or {})
    if config_file is not None:
        if not config_file.exists():
            raise ConfigError(f"{config_file}: no such config file")
        text = config_file.read_text()
        toml = config_file.suffix == ".toml"
        try:
            loaded = tomllib.loads(text) if toml else yaml.safe_load(text)
        except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{config_file}: not valid {'TOML' if toml else 'YAML'}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_file}: expected a table of settings")
        settings |= loaded
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if isinstance(value, dict):  # nested tables (training) merge field by field
            settings[key] = {**settings.get(key, {}), **{k: v for k, v in value.items() if v is not None}}
        else:
            settings[key] = value
    try:
        return model(**settings)
    except ValidationError as exc:
        where = f"{config_file}: " if config_file else ""
        raise ConfigError(where + "; ".join(f"field '{'.'.join(map(str, e['loc']))}': {e['msg']}"
                                            for e in exc.errors())) from None
