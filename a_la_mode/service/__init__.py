"""The web service (``alamode serve``) and schedules (``alamode activate``)."""
