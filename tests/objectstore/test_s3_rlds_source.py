"""An RLDS source on s3:// (TensorFlow 2.21 has no s3 filesystem): one clear error before any read."""

from __future__ import annotations

import fsspec
import pytest

from datasets_cards import CardError, load_source_card
from pipelines.formats import open_reader
from pipelines.formats.rlds.reader import UnsupportedSchemeError, check_scheme

tf = pytest.importorskip("tensorflow")


@pytest.mark.skipif("s3" in tf.io.gfile.get_registered_schemes(), reason="a TensorFlow s3 filesystem is installed")
def test_rlds_source_on_s3_says_what_to_do(s3_prefix):
    location = f"{s3_prefix}/droid/1.0.1"
    with fsspec.open(f"{location}/dataset_info.json", "w") as f:  # the data is there: only TensorFlow cannot read it
        f.write("{}")
    with pytest.raises(UnsupportedSchemeError, match=r"cannot read s3://.*tensorflow-io.*local disk") as e:
        open_reader(load_source_card("droid"), location)
    assert isinstance(e.value, CardError)  # the CLI reports it in one line, exit code 1


def test_built_in_schemes_pass_the_check(tmp_path):
    check_scheme(str(tmp_path))
    check_scheme("gs://bucket/droid/1.0.1")  # built into TensorFlow: no request is made by the check
