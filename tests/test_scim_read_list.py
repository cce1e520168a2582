"""Reading a SCIM list one resource at a time gives what json.loads gives, or refuses clearly."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zsync_core.zivver.scim import read_list

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(
    resources=st.lists(st.dictionaries(st.text(), JSON, max_size=5), max_size=6),
    extra=st.dictionaries(st.text().filter(lambda k: k != "Resources"), JSON, max_size=3),
    indent=st.sampled_from([None, 0, 2]),
)
def test_the_same_as_json_loads_whatever_the_layout(resources, extra, indent):
    document = {**extra, "Resources": resources, "totalResults": len(resources)}
    seen = []
    top = read_list(json.dumps(document, indent=indent).encode(), seen.append)
    assert seen == resources
    assert top == {**extra, "Resources": len(resources), "totalResults": len(resources)}


@pytest.mark.parametrize(
    "content", [b"[]", b'{"Resources": [1, 2', b"<html>Bad gateway</html>", b""]
)
def test_what_is_not_a_list_response_is_refused(content):
    with pytest.raises((ValueError, IndexError)):
        read_list(content, lambda item: None)
