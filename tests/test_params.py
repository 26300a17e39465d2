import pytest

from imagenette_repro.params import ParamsError, validate


def test_repository_params_are_valid_and_default_to_the_best_row(params):
    checked = validate(params)
    assert checked.network == "network_84_8153" and not checked.is_recipe
    row = checked.report_rows["network_84_8153"]
    for key in (
        "optimizer",
        "learn_rate",
        "patience",
        "drop_period",
        "drop_rate_factor",
        "image_augmentation",
    ):
        assert checked.row_columns[key] == getattr(row, key) == params[key], key
    assert len(checked.report_rows) == 15


def test_rows_without_a_layer_list_use_the_assumed_architecture(params):
    checked = validate(params)
    for row in ("network_64_0764", "network_65_6561", "network_71_6943"):
        assert checked.architecture_name(row) == "network_75_4395"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p.update(optimizer="rmsprop"), "'optimizer' is 'rmsprop'; allowed: sgdm, adam"),
        (lambda p: p.update(network="network_99"), "'network' is 'network_99'"),
        (lambda p: p.update(learn_rate=-0.1), "'learn_rate' must be > 0"),
        (lambda p: p.update(patience="4"), "'patience' must be integer"),
        (lambda p: p.update(learn_rate=True), "'learn_rate' must be"),
        (lambda p: p["train"].update(batch_sise=3), "unknown key 'train.batch_sise'"),
        (lambda p: p["data"].pop("input_size"), "missing key 'data.input_size'"),
        (lambda p: p["data"].update(val_fraction=1.2), "'data.val_fraction' must be in"),
        (lambda p: p["data"].update(input_size=16), "input size 16 is too small"),
        (
            lambda p: p["architectures"]["network_84_8153"].insert(1, "Conv, 3, 64"),
            "architectures.network_84_8153: unknown layer 'Conv, 3, 64'",
        ),
        (lambda p: p["train"].update(init="he"), "'train.init' is 'he'"),
        (
            lambda p: p["data"].update(protocol="holdout"),
            "'data.protocol' is 'holdout'; allowed: val_folder, train_split",
        ),
        (lambda p: p["train"].update(keep="best"), "'train.keep' is 'best'; allowed: final"),
        (lambda p: p["googlenet"].update(patience_on="acc"), "'googlenet.patience_on' is 'acc'"),
        (lambda p: p["train"].update(momentum=1.5), "'train.momentum' must be in [0, 1), got 1.5"),
        (lambda p: p["train"].update(batch_size=True), "'train.batch_size' must be integer, got"),
        (lambda p: p["train"].update(batch_size=4.0), "'train.batch_size' must be integer, got"),
        (lambda p: p["data"].update(md5=5), "'data.md5' must be string or null, got 5"),
        (lambda p: p["googlenet"].update(patience=0), "'googlenet.patience' must be > 0, got 0"),
        (lambda p: p.update(data=3), "'data' must be a mapping, got 3"),
        (
            lambda p: p["report_rows"]["network_84_8153"].update(acuracy=1),
            "unknown key 'report_rows.network_84_8153.acuracy' (allowed: accuracy, drop_period,",
        ),
        (
            lambda p: p["assumed_architectures"].update(network_x=5),
            "'assumed_architectures.network_x' must be string, got 5",
        ),
    ],
)
def test_bad_values_are_named(params, change, message):
    change(params)
    with pytest.raises(ParamsError) as err:
        validate(params)
    assert message in str(err.value)


def test_a_network_of_another_input_size_stops_with_both_sizes_and_the_keys(params):
    params["network"] = "network_74_1656"  # ImageInput 256x256
    params["data"]["input_size"] = 224
    params["train"]["scaled_input"] = False
    with pytest.raises(ParamsError) as err:
        validate(params)
    message = str(err.value)
    assert "'network_74_1656' takes 256x256 images" in message
    assert "'data.input_size' is 224" in message
    assert "data.input_size=256" in message and "train.scaled_input=true" in message
    params["data"]["input_size"] = 256  # its own size
    validate(params)
    params["data"]["input_size"] = 32  # a deliberately scaled run
    params["train"]["scaled_input"] = True
    validate(params)
