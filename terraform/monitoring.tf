# Log-based metrics over the services' own log entries, and (opt-in) alert policies on them.
#
# The entries, their fields and values are described in deploy/log-fields.json (the services'
# log contract); deploy/check_monitoring.py checks every filter, extractor and label here
# against it. Filters use the Logging query language; the alert conditions' filters use
# Cloud Monitoring's filter syntax over the metrics' types, logging.googleapis.com/user/NAME.

# ---- log-based metrics (always created) ------------------------------------------------------

# Every authentication refusal (401, 403, 503), by service, reason code and status.
resource "google_logging_metric" "auth_refusals" {
  project     = var.project_id
  name        = "${var.name_prefix}-auth-refusals"
  description = "Requests the ${var.name_prefix} services refused at authentication, by service, reason and HTTP status."
  filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=(\"${local.caller_name}\" OR \"${local.called_name}\") AND jsonPayload.message=\"request refused by authentication\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name_prefix} authentication refusals"

    labels {
      key         = "service"
      value_type  = "STRING"
      description = "Cloud Run service that refused the request."
    }
    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "Refusal code (deploy/log-fields.json), e.g. expired, audience, not_allowed, keys_unavailable; forwarded_* for the end user's forwarded token."
    }
    labels {
      key         = "status"
      value_type  = "STRING"
      description = "HTTP status of the refusal: 401, 403 or 503."
    }
  }

  label_extractors = {
    "service" = "EXTRACT(resource.labels.service_name)"
    "reason"  = "EXTRACT(jsonPayload.auth.reason)"
    "status"  = "EXTRACT(jsonPayload.auth.status)"
  }

  depends_on = [time_sleep.apis_enabled]
}

# The caller could not get an ID token for called (metadata server or other token source).
resource "google_logging_metric" "token_fetch_failures" {
  project     = var.project_id
  name        = "${var.name_prefix}-token-fetch-failures"
  description = "ID-token fetches that failed at the ${var.name_prefix} caller, by token source."
  filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.caller_name}\" AND jsonPayload.event=\"token_fetch_failed\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name_prefix} token fetch failures"

    labels {
      key         = "source"
      value_type  = "STRING"
      description = "Token source (TOKEN_SOURCE), e.g. metadata."
    }
  }

  label_extractors = {
    "source" = "EXTRACT(jsonPayload.source)"
  }

  depends_on = [time_sleep.apis_enabled]
}

# A service could not fetch a signing-key set (Google's certificates or IAP's keys).
resource "google_logging_metric" "key_set_fetch_failures" {
  project     = var.project_id
  name        = "${var.name_prefix}-key-set-fetch-failures"
  description = "Signing-key-set fetches that failed at the ${var.name_prefix} services, by service and key-set URL."
  filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=(\"${local.caller_name}\" OR \"${local.called_name}\") AND jsonPayload.event=\"key_set_fetch_failed\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name_prefix} key-set fetch failures"

    labels {
      key         = "service"
      value_type  = "STRING"
      description = "Cloud Run service whose fetch failed."
    }
    labels {
      key         = "url"
      value_type  = "STRING"
      description = "Key-set URL (AUTH_JWKS_URL or AUTH_IAP_JWKS_URL)."
    }
  }

  label_extractors = {
    "service" = "EXTRACT(resource.labels.service_name)"
    "url"     = "EXTRACT(jsonPayload.url)"
  }

  depends_on = [time_sleep.apis_enabled]
}

# ---- alert policies (only with var.alert_notification_channels) ------------------------------
#
# Each condition refers to its metric through the resource (google_logging_metric.X.name), so
# the metric exists before the policy. A metric that has never counted anything has no time
# series yet: the conditions then simply do not fire.

resource "google_monitoring_alert_policy" "refusal_burst" {
  count = length(var.alert_notification_channels) > 0 ? 1 : 0

  project               = var.project_id
  display_name          = "${var.name_prefix}: burst of authentication refusals"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = "One ${var.name_prefix} service refused more than ${var.refusal_burst_threshold} requests at authentication within ${var.refusal_burst_window_seconds} s. The metric's `reason` label says why (deploy/log-fields.json): many `expired`/`audience`/`not_allowed` suggest a misconfigured or hostile client; `keys_unavailable` means the service cannot fetch signing keys. Logs: resource.type=\"cloud_run_revision\" AND jsonPayload.message=\"request refused by authentication\"."
  }

  conditions {
    display_name = "refusals > ${var.refusal_burst_threshold} in ${var.refusal_burst_window_seconds} s on one service"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.auth_refusals.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.refusal_burst_threshold
      duration        = "0s"

      aggregations {
        alignment_period     = "${var.refusal_burst_window_seconds}s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.service"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_alert_policy" "keys_unavailable" {
  count = length(var.alert_notification_channels) > 0 ? 1 : 0

  project               = var.project_id
  display_name          = "${var.name_prefix}: signing keys unavailable (503 refusals)"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = "A ${var.name_prefix} service refused a request with 503 because it has no usable signing keys (reason keys_unavailable, or forwarded_keys_unavailable for the end user's forwarded token): the key-set endpoint has been unreachable for longer than AUTH_JWKS_MAX_STALE_SECS, or never answered since the instance started. See the key-set fetch failures metric and the services' egress."
  }

  conditions {
    display_name = "any keys_unavailable refusal"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.auth_refusals.name}\" AND resource.type=\"cloud_run_revision\" AND metric.label.reason=one_of(\"keys_unavailable\", \"forwarded_keys_unavailable\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.service", "metric.label.reason"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_alert_policy" "token_fetch_failures" {
  count = length(var.alert_notification_channels) > 0 ? 1 : 0

  project               = var.project_id
  display_name          = "${var.name_prefix}: caller cannot get ID tokens"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = "The ${var.name_prefix} caller failed to fetch an ID token for called (jsonPayload.event=\"token_fetch_failed\"; jsonPayload.error says why). Calls to called fail with 503 until a fetch succeeds. Check the metadata server and the caller's service account."
  }

  conditions {
    display_name = "any token fetch failure"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.token_fetch_failures.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.source"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_alert_policy" "key_set_fetch_failures" {
  count = length(var.alert_notification_channels) > 0 ? 1 : 0

  project               = var.project_id
  display_name          = "${var.name_prefix}: signing-key set fetch failed"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = "A ${var.name_prefix} service failed to fetch a signing-key set (jsonPayload.event=\"key_set_fetch_failed\"; jsonPayload.url and jsonPayload.error say which and why). It keeps using the keys it has for up to AUTH_JWKS_MAX_STALE_SECS; after that, refusals with reason keys_unavailable (503) follow."
  }

  conditions {
    display_name = "any key-set fetch failure"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.key_set_fetch_failures.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.service", "metric.label.url"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }
}
