"""Unit tests for ffsystemd.urls.check_start_url."""

from __future__ import annotations

import pytest

from ffsystemd.urls import MAX_URL_LENGTH, check_start_url


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "https://example.com/",
        "https://example.com:8443/path?q=1&r=2#frag",
        "http://127.0.0.1:8888/lab",
        "http://[::1]:8080/",
        "HTTPS://EXAMPLE.COM/",
        "about:blank",
        "about:home",
    ],
)
def test_accepts(url):
    assert check_start_url(url) == url


def test_accepts_url_of_maximum_length():
    url = "https://example.com/" + "a" * (MAX_URL_LENGTH - len("https://example.com/"))
    assert len(url) == MAX_URL_LENGTH
    assert check_start_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "file:///etc/passwd",
        "data:text/html,<script>alert(1)</script>",
        "data:,hi",
        "ftp://example.com/",
        "chrome://browser/content/browser.xhtml",
        "http://",
        "https://",
        "http:///path",
        "http:example.com",
        "//example.com/",
        "example.com",
        "",
        "about:",
        "about:blank?x",
        "about:Blank",
        "https://example.com/" + "a" * MAX_URL_LENGTH,
    ],
)
def test_rejects_bad_urls(url):
    with pytest.raises(ValueError):
        check_start_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a b",
        " https://example.com/",
        "https://example.com/\t",
        "https://example.com/\n",
        "https://example.com/\r\nX-Injected: 1",
        "https://example.com/\x00",
        "https://example.com/\x1b[31m",
        "https://example.com/\x7f",
        "https://example.com/\u00a0",
        "https://example.com/\u2028",
        "about:blank\n",
        "https://example.com/\ud800",
        "https://example.com/\udfff",
    ],
)
def test_rejects_whitespace_and_control_characters(url):
    with pytest.raises(ValueError, match="whitespace or control"):
        check_start_url(url)


def test_rejects_c1_control_characters():
    with pytest.raises(ValueError):
        check_start_url("https://example.com/\x9b31m")


@pytest.mark.parametrize("value", [None, 42, b"https://example.com/", ["https://example.com/"], object()])
def test_rejects_non_strings(value):
    with pytest.raises(ValueError, match="must be a string"):
        check_start_url(value)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("ftp://example.com/?token=s3cret", "got a ftp: URL"),
        ("https:///s3cret", "got a https: URL without a host"),
        ("example.com/s3cret", "got something else"),
        ("javascript:s3cret()", "got a javascript: URL"),
    ],
)
def test_a_refusal_does_not_repeat_the_url(url, said):
    """Jupyter logs a 400's message: a URL (maybe with a secret in it) must not be in it."""
    with pytest.raises(ValueError) as refused:
        check_start_url(url)
    assert str(refused.value).endswith(said)
    assert "s3cret" not in str(refused.value)
