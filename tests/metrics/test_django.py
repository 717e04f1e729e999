"""Django: the WSGI handler wrapped, routes labelled by URL pattern."""

from __future__ import annotations

import django
import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path

import glassbox
from glassbox.exceptions import ConfigurationError
from tests.metrics.helpers import parse, value


def article(request: HttpRequest, pk: int) -> HttpResponse:
    return JsonResponse({"pk": pk})


api_patterns = [path("articles/<int:pk>/", article)]
urlpatterns = [path("api/", include(api_patterns))]


@pytest.fixture(scope="module")
def django_settings() -> None:
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="test-only-not-a-secret",
            ROOT_URLCONF=__name__,
            ALLOWED_HOSTS=["*"],
            MIDDLEWARE=["glassbox.django.RouteMiddleware"],
            INSTALLED_APPS=[],
        )
        django.setup()


def test_django_wsgi_routes(django_settings: None) -> None:
    from django.core.handlers.wsgi import WSGIHandler
    from werkzeug.test import Client

    registry = glassbox.Registry()
    app = glassbox.instrument(WSGIHandler(), service="svc", registry=registry)
    client = Client(app)
    for url, status in (
        ("/api/articles/3/", 200),
        ("/api/articles/4/", 200),
        ("/api/nothing/", 404),
    ):
        response = client.get(url)
        response.get_data()
        response.close()
        assert response.status_code == status
    samples = parse(client.get("/metrics").get_data(as_text=True))
    total = "http_requests_total"
    assert value(samples, total, method="GET", route="/api/articles/<int:pk>/", status="200") == 2
    assert value(samples, total, method="GET", route="<unmatched>", status="404") == 1


def test_django_without_route_middleware_is_a_clear_error(
    django_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core.handlers.wsgi import WSGIHandler

    monkeypatch.setattr(settings, "MIDDLEWARE", [])
    with pytest.raises(ConfigurationError, match=r"glassbox\.django\.RouteMiddleware"):
        glassbox.instrument(WSGIHandler(), service="svc", registry=glassbox.Registry())
