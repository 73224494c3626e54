from __future__ import annotations

app_name = "services"

urlpatterns: list = []
