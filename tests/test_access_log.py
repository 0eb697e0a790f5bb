from ingress.access_log import printable


def test_newline_is_escaped():
    assert printable("/x\n2026 INFO forged") == "/x\\n2026 INFO forged"


def test_escape_sequence_is_escaped():
    assert printable("/x\x1b[31mred") == "/x\\x1b[31mred"


def test_ordinary_path_is_unchanged():
    assert printable("/oauth/status/3f2a") == "/oauth/status/3f2a"
