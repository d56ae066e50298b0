"""availability-cron: refreshes the application's calendar-availability caches."""
