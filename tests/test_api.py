"""The public API: a cheap `import zoo`, listing with wildcards, creating models."""

import subprocess
import sys

import pytest

import zoo


def test_import_zoo_is_cheap_and_loads_no_optional_dependency():
    code = (
        "import sys, time; t = time.perf_counter(); import zoo; dt = time.perf_counter() - t; "
        "heavy = [m for m in ('triton', 'transformers', 'torch_geometric', 'peft', 'datasets', 'lightning', 'torch')"
        " if m in sys.modules]; print(dt, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert float(out[0]) < 2.0
    assert out[1].strip() == "[]"


def test_public_api():
    assert set(zoo.__all__) >= {"list_models", "create_model", "from_pretrained", "push_to_hub"}


def test_list_models_supports_wildcards():
    everything = zoo.list_models()
    assert everything == sorted(everything)
    assert zoo.list_models("conn-*") == [m for m in everything if m.startswith("conn-")]
    assert zoo.list_models("no-such-family-*") == []


def test_create_model_from_family_with_overrides():
    module = zoo.create_model("conn", autoencoder="mlp", ae_widths=[32, 8], copies=2)
    assert module.net_config.copies == 2 and module.net_config.ae_widths == [32, 8]
    with pytest.raises(TypeError):
        zoo.create_model("conn", no_such_field=1)


def test_create_model_unknown_name():
    with pytest.raises(KeyError, match="unknown model id"):
        zoo.create_model("resnet-9000")


def test_set_dotted_overrides_a_recipe_value_and_explains_bad_paths():
    from zoo.utils import set_dotted

    cfg = {"model": {"init_args": {"lr": 0.001, "net": {"rec_layers": 4}}}, "trainer": {"max_epochs": 6}}
    set_dotted(cfg, "model.init_args.lr=0.0005")
    set_dotted(cfg, "model.init_args.net.rec_layers=null")
    set_dotted(cfg, "trainer.max_epochs=37")
    assert cfg == {"model": {"init_args": {"lr": 0.0005, "net": {"rec_layers": None}}}, "trainer": {"max_epochs": 37}}
    with pytest.raises(ValueError, match="expected KEY.PATH=VALUE"):
        set_dotted(cfg, "model.init_args.lr")
    with pytest.raises(ValueError, match=r"'model.init_arg' is not a section.*\['init_args'\]"):
        set_dotted(cfg, "model.init_arg.lr=1")
