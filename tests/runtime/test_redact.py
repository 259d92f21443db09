"""A service url's password never reaches an error message."""

from agentos.runtime._redact import masked_url


def test_the_password_is_masked_and_the_rest_of_the_url_kept() -> None:
    assert masked_url("redis://user:s3cret@db.example:6380/2") == "redis://user:***@db.example:6380/2"
    assert masked_url("redis://:s3cret@localhost:6379") == "redis://:***@localhost:6379"
    assert masked_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert "s3cret" not in masked_url("rediss://u:s3cret@h/0?ssl_cert_reqs=none")
