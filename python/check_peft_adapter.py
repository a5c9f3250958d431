#!/usr/bin/env python3
"""Check LoRA adapters and merged models written by dnatune against Hugging Face transformers + PEFT.

For every case folder it loads

    model = transformers.AutoModelForSequenceClassification.from_pretrained(base, num_labels=n)
    model = peft.PeftModel.from_pretrained(model, "<case>/adapter")

runs it on the token ids dnatune used and compares the logits with dnatune's (max |diff| must be at
most --tolerance, default 1e-4). It also checks that PEFT holds exactly the tensors of the adapter file
(the state dict PEFT would save equals the file), and, when `<case>/merged/` exists, that the merged
model loads with plain transformers (no missing weights) and gives the same logits.

A case folder holds what dnatune's test `tests/peft_export.rs` writes:

    <case>/adapter/                       adapter_config.json + adapter_model.safetensors
    <case>/expected_logits.safetensors    logits [batch, labels], input_ids, attention_mask
    <case>/merged/                        optional: write_merged_model output

Write them, then check them (the base models are the tiny checkpoints in ../shared/fixtures):

    DNATUNE_EXPORT_DIR=/tmp/dnatune-export cargo test --test peft_export inputs_for_the_python_check
    python python/check_peft_adapter.py /tmp/dnatune-export

The argument may be one case folder or a folder of case folders. The base model is the adapter's
`base_model_name_or_path` unless --base is given.

Remote code. DNABERT-2, Nucleotide Transformer v2 and GENA-LM run model code shipped with the checkpoint
(`auto_map` in config.json, loaded with trust_remote_code). Without those `.py` files transformers would
silently build its native class and drop weights, so such a case is only checked when every module named
in `auto_map` is found in the base folder or in a --remote-code folder; otherwise it is reported as
"not checked" with the missing files. GENA-LM maps only `AutoModel`, so the staged copy also gets an
`AutoModelForSequenceClassification` entry in the same module.

Needs: torch, transformers (4.55.4 runs all three remote codes unmodified), peft, safetensors.
Exit status: 0 when every checked case agrees, 1 when one differs or fails to load, 2 on bad arguments.
With --strict, cases that could not be checked also give exit status 1.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

EXPECTED_FILE = "expected_logits.safetensors"


class NotCheckable(Exception):
    """The case cannot be checked here (e.g. remote code missing); not a failure of the export."""


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="See the top of this file for the folder layout and remote-code handling.",
    )
    parser.add_argument("export_dir", type=Path, help="a case folder or a folder of case folders")
    parser.add_argument("--base", type=Path, help="base model folder (default: from adapter_config.json)")
    parser.add_argument(
        "--remote-code",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="folder with the .py files of a remote-code model (may be repeated)",
    )
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |logit diff|")
    parser.add_argument("--strict", action="store_true", help="fail when a case cannot be checked")
    return parser.parse_args()


def case_dirs(export_dir):
    if (export_dir / EXPECTED_FILE).is_file():
        return [export_dir]
    cases = sorted(p for p in export_dir.iterdir() if (p / EXPECTED_FILE).is_file())
    if not cases:
        sys.exit(f"error: {export_dir} holds no {EXPECTED_FILE} (nor do its subfolders); "
                 "write them with DNATUNE_EXPORT_DIR=... cargo test --test peft_export")
    return cases


def read_json(path):
    with open(path) as f:
        return json.load(f)


def remote_modules(config):
    """The .py modules named in auto_map, e.g. {"bert_layers", "configuration_bert"}."""
    modules = set()
    for value in config.get("auto_map", {}).values():
        for path in value if isinstance(value, list) else [value]:
            if isinstance(path, str):
                modules.add(path.split("--")[-1].rsplit(".", 1)[0])
    return modules


def staged_model_dir(model_dir, remote_code_dirs, workdir):
    """`model_dir` itself for native models; for remote-code models a copy with the .py files
    beside it and an AutoModelForSequenceClassification entry in auto_map."""
    config = read_json(model_dir / "config.json")
    modules = remote_modules(config)
    if not modules:
        return model_dir, False
    sources = [model_dir] + list(remote_code_dirs)
    missing = [m for m in sorted(modules) if not any((d / f"{m}.py").is_file() for d in sources)]
    if missing:
        raise NotCheckable(
            "remote code " + ", ".join(f"{m}.py" for m in missing)
            + f" not found in {model_dir} or any --remote-code folder (the test fixtures do not"
            " ship it; pass the folder with the model's .py files as --remote-code DIR)"
        )
    staged = Path(tempfile.mkdtemp(prefix="staged-", dir=workdir))
    for item in model_dir.iterdir():
        if item.is_file():
            (staged / item.name).symlink_to(item.resolve())
    # Every .py of the folders that hold the named modules: they import helpers of their own.
    for source in sources:
        if any((source / f"{m}.py").is_file() for m in modules):
            for py in source.glob("*.py"):
                target = staged / py.name
                if not target.exists():
                    shutil.copy(py, target)
    auto_map = config["auto_map"]
    if "AutoModelForSequenceClassification" not in auto_map:
        model_entry = next(v for k, v in auto_map.items() if k.startswith("AutoModel"))
        module = model_entry.rsplit(".", 1)[0]
        classifier = "EsmForSequenceClassification" if config.get("model_type") == "esm" \
            else "BertForSequenceClassification"
        auto_map["AutoModelForSequenceClassification"] = f"{module}.{classifier}"
    (staged / "config.json").unlink()
    with open(staged / "config.json", "w") as f:
        json.dump(config, f, indent=2)
    return staged, True


def disable_triton_attention(model):
    """DNABERT-2's code picks a Triton flash-attention kernel whenever triton imports; the
    reference (and dnatune) use its plain PyTorch attention, the same math."""
    for module in model.modules():
        code = sys.modules.get(type(module).__module__)
        if code is not None and getattr(code, "flash_attn_qkvpacked_func", None) is not None:
            code.flash_attn_qkvpacked_func = None


def load_classifier(model_dir, num_labels, remote, allowed_missing):
    from transformers import AutoModelForSequenceClassification

    kwargs = {"num_labels": num_labels} if num_labels is not None else {}
    model, info = AutoModelForSequenceClassification.from_pretrained(
        model_dir, trust_remote_code=remote, output_loading_info=True, **kwargs
    )
    missing = [k for k in info["missing_keys"] if not k.startswith(allowed_missing)]
    if missing:
        raise AssertionError(f"{model_dir} loaded without the weights {missing[:5]}")
    disable_triton_attention(model)
    return model.eval()


def max_abs_diff(logits, expected):
    if tuple(logits.shape) != tuple(expected.shape):
        raise AssertionError(f"logits shape {tuple(logits.shape)} != expected {tuple(expected.shape)}")
    return (logits.float() - expected.float()).abs().max().item()


def run(model, expected):
    with torch.no_grad():
        out = model(input_ids=expected["input_ids"].long(),
                    attention_mask=expected["attention_mask"].long())
    return out.logits


def check_adapter(case, base_arg, remote_code_dirs, workdir):
    from peft import PeftModel, get_peft_model_state_dict

    adapter_dir = case / "adapter"
    adapter_config = read_json(adapter_dir / "adapter_config.json")
    base = base_arg or Path(adapter_config["base_model_name_or_path"])
    if not base.is_absolute() and not base_arg:
        base = (adapter_dir / base).resolve()
    expected = load_file(str(case / EXPECTED_FILE))
    model_dir, remote = staged_model_dir(base, remote_code_dirs, workdir)
    num_labels = expected["logits"].shape[1]
    # The head is replaced by the adapter's; a randomly initialised one is expected here.
    model = load_classifier(model_dir, num_labels, remote, ("classifier.", "score."))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = PeftModel.from_pretrained(model, adapter_dir).eval()
    for w in caught:
        if "adapter" in str(w.message).lower() and "key" in str(w.message).lower():
            raise AssertionError(f"PEFT: {w.message}")

    # What PEFT holds (and would save) is exactly what dnatune wrote.
    held = get_peft_model_state_dict(model)
    written = load_file(str(adapter_dir / "adapter_model.safetensors"))
    if set(held) != set(written):
        raise AssertionError(
            f"PEFT holds {sorted(set(held) - set(written))[:4]} not in the file; "
            f"the file has {sorted(set(written) - set(held))[:4]} PEFT does not use"
        )
    for key, tensor in written.items():
        if not torch.equal(held[key].float().cpu(), tensor.float()):
            raise AssertionError(f"PEFT's {key} differs from the file")
    return max_abs_diff(run(model, expected), expected["logits"]), remote


def check_merged(case, remote_code_dirs, workdir):
    merged_dir = case / "merged"
    expected = load_file(str(case / EXPECTED_FILE))
    model_dir, remote = staged_model_dir(merged_dir, remote_code_dirs, workdir)
    # A base checkpoint without ESM's contact head gives a merged one without it; it is unused here.
    model = load_classifier(model_dir, None, remote, ("esm.contact_head.",))
    labels = read_json(merged_dir / "config.json").get("id2label", {})
    if len(labels) != expected["logits"].shape[1]:
        raise AssertionError(f"config.json id2label has {len(labels)} labels")
    return max_abs_diff(run(model, expected), expected["logits"])


def main():
    args = parse_args()
    if not args.export_dir.is_dir():
        print(f"error: {args.export_dir} is not a folder", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    import peft
    import transformers

    # The adapter path starts from a randomly initialised head on purpose; that warning is noise.
    transformers.logging.set_verbosity_error()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")
    print(f"tolerance: max |logit diff| <= {args.tolerance:g}\n")
    failed, not_checked = [], []
    with tempfile.TemporaryDirectory(prefix="dnatune-check-") as workdir:
        for case in case_dirs(args.export_dir):
            results = []
            for what, check in [
                ("PEFT adapter", lambda: check_adapter(case, args.base, args.remote_code, workdir)[0]),
                ("merged model", lambda: check_merged(case, args.remote_code, workdir)),
            ]:
                if what == "merged model" and not (case / "merged").is_dir():
                    continue
                try:
                    diff = check()
                except NotCheckable as reason:
                    results.append(f"{what}: NOT CHECKED ({reason})")
                    not_checked.append(f"{case.name} {what}: {reason}")
                    continue
                except Exception as error:  # report every case, then fail at the end
                    results.append(f"{what}: FAILED ({type(error).__name__}: {error})")
                    failed.append(f"{case.name} {what}")
                    continue
                ok = diff <= args.tolerance
                results.append(f"{what}: max |diff| {diff:.2e} {'ok' if ok else 'TOO LARGE'}")
                if not ok:
                    failed.append(f"{case.name} {what}")
            print(f"{case.name:<24} " + "; ".join(results))

    print()
    if not_checked:
        print("Not checked:")
        for line in not_checked:
            print(f"  {line}")
    if failed:
        print("FAILED: " + ", ".join(failed))
        return 1
    if not_checked and args.strict:
        print("FAILED (--strict): some cases could not be checked")
        return 1
    print("All checked cases agree with dnatune." if not not_checked
          else "Every case that could be checked agrees with dnatune.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
