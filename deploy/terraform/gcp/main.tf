# Patchbay bridge VMs on GCP. Each bridge: a static external IP (its SIP Contact and SDP c= address),
# a Debian 12 VM bootstrapped by an idempotent startup script, and the shared service account that may
# read exactly two kinds of secret. Secret *values* never pass through Terraform: the secrets are created
# empty here and filled with `gcloud secrets versions add` (see the `populate_secrets` output).

provider "google" {
  project = var.project_id
  region  = var.region
  zone    = var.zone
}

locals {
  bridge_names = [for index in range(var.instance_count) : "${var.name}-${index}"]
  labels       = merge({ app = "patchbay", component = "sip-bridge" }, var.labels)

  # Google's load-balancer / health-check probers and Identity-Aware Proxy TCP forwarding.
  health_check_ranges = ["35.191.0.0/16", "130.211.0.0/22"]
  iap_ranges          = ["35.235.240.0/20"]

  release_gcs_bucket = var.bridge_release_gcs == null ? null : regex("^gs://([^/]+)/", var.bridge_release_gcs)[0]

  # Settings shared by every bridge, by the environment variable names of bridge-vm/src/config/schema.ts.
  env_common = merge(
    {
      SIP_REGISTRAR       = var.sip_registrar
      SIP_TRANSPORT       = var.sip_transport
      SIP_LOCAL_ADDRESS   = "0.0.0.0"
      SIP_LOCAL_PORT      = tostring(var.sip_port)
      SIP_ALLOWED_SOURCES = join(",", var.pbx_cidrs)
      RTP_PORT_MIN        = tostring(var.rtp_port_min)
      RTP_PORT_MAX        = tostring(var.rtp_port_max)
      RECORDING_ENABLED   = tostring(var.recording_enabled)
      CLOUD_URL           = var.cloud_url
      HTTP_HOST           = "0.0.0.0"
      HTTP_PORT           = tostring(var.health_port)
      LOG_LEVEL           = var.log_level
      DRAIN_TIMEOUT       = tostring(var.drain_timeout_s)
    },
    var.sip_domain == null ? {} : { SIP_DOMAIN = var.sip_domain },
    var.extra_env,
  )

  bridge_env = [for index in range(var.instance_count) : merge(local.env_common, {
    SIP_USERNAME       = try(var.sip_extensions[index], "") # length checked by a precondition below
    SIP_PUBLIC_ADDRESS = google_compute_address.bridge[index].address
    BRIDGE_ID          = local.bridge_names[index]
  })]

  # systemd EnvironmentFile lines: double-quoted, with \ " ` $ escaped (systemd's and bash's rules agree).
  env_file_bodies = [for env in local.bridge_env : join("\n", [
    for key in sort(keys(env)) :
    "${key}=\"${replace(replace(replace(replace(env[key], "\\", "\\\\"), "\"", "\\\""), "`", "\\`"), "$", "\\$")}\""
  ])]

  # Per-host systemd tuning, layered over deploy/systemd/patchbay-bridge.service.
  systemd_dropin = join("\n", concat(
    ["[Service]", "TimeoutStopSec=${var.drain_timeout_s + 30}"],
    var.sip_port < 1024 ? ["CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE"] : [],
  ))
}

# --- APIs -----------------------------------------------------------------------------------------

resource "google_project_service" "required" {
  for_each = var.enable_apis ? toset(["compute.googleapis.com", "secretmanager.googleapis.com", "iap.googleapis.com"]) : toset([])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# --- Identity and secrets -------------------------------------------------------------------------

resource "google_service_account" "bridge" {
  project      = var.project_id
  account_id   = "${substr(var.name, 0, 27)}-vm" # service account IDs: 6-30 characters
  display_name = "Patchbay SIP bridge VMs"
  description  = "Runs the Patchbay bridge; reads its own secrets and nothing else."
}

# One SIP password per bridge (each registers as its own extension).
resource "google_secret_manager_secret" "sip_password" {
  count = var.instance_count

  project   = var.project_id
  secret_id = "${local.bridge_names[count.index]}-sip-password"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.required]
}

# The bridge↔Worker shared secret: the Worker's BRIDGE_SECRET, the bridge's CLOUD_SECRET.
resource "google_secret_manager_secret" "cloud_secret" {
  project   = var.project_id
  secret_id = "${var.name}-cloud-secret"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.required]
}

resource "google_secret_manager_secret_iam_member" "sip_password_access" {
  count = var.instance_count

  project   = var.project_id
  secret_id = google_secret_manager_secret.sip_password[count.index].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.bridge.email}"
}

resource "google_secret_manager_secret_iam_member" "cloud_secret_access" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.cloud_secret.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.bridge.email}"
}

resource "google_storage_bucket_iam_member" "release_read" {
  count = local.release_gcs_bucket == null ? 0 : 1

  bucket = local.release_gcs_bucket
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.bridge.email}"
}

# --- Addresses ------------------------------------------------------------------------------------

# The address the PBX sees: SIP_PUBLIC_ADDRESS (Contact, Via, SDP c=). Static, so the PBX's firewall
# and fail2ban whitelist stay valid across VM rebuilds.
resource "google_compute_address" "bridge" {
  count = var.instance_count

  project      = var.project_id
  region       = var.region
  name         = local.bridge_names[count.index]
  address_type = "EXTERNAL"
  network_tier = "PREMIUM"
  labels       = local.labels

  depends_on = [google_project_service.required]
}

# --- Firewall: the PBX, Google's health checkers and IAP, nothing else -------------------------------

resource "google_compute_firewall" "sip_rtp_from_pbx" {
  project     = var.project_id
  name        = "${var.name}-sip-rtp-from-pbx"
  network     = var.network
  description = "SIP and RTP to the Patchbay bridges, from the PBX only."
  direction   = "INGRESS"
  priority    = 1000

  source_ranges           = var.pbx_cidrs
  target_service_accounts = [google_service_account.bridge.email]

  allow {
    protocol = "udp"
    ports    = [tostring(var.sip_port), "${var.rtp_port_min}-${var.rtp_port_max}"]
  }

  allow {
    protocol = "tcp"
    ports    = [tostring(var.sip_port)]
  }

  depends_on = [google_project_service.required]
}

resource "google_compute_firewall" "health_from_google" {
  project     = var.project_id
  name        = "${var.name}-health-from-google"
  network     = var.network
  description = "/healthz and /metrics from Google health-check ranges only."
  direction   = "INGRESS"
  priority    = 1000

  source_ranges           = local.health_check_ranges
  target_service_accounts = [google_service_account.bridge.email]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.health_port)]
  }

  depends_on = [google_project_service.required]
}

resource "google_compute_firewall" "ssh_from_iap" {
  project     = var.project_id
  name        = "${var.name}-ssh-from-iap"
  network     = var.network
  description = "SSH only through IAP TCP forwarding (gcloud compute ssh --tunnel-through-iap)."
  direction   = "INGRESS"
  priority    = 1000

  source_ranges           = local.iap_ranges
  target_service_accounts = [google_service_account.bridge.email]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }

  depends_on = [google_project_service.required]
}

# --- The VMs --------------------------------------------------------------------------------------

resource "google_compute_instance" "bridge" {
  count = var.instance_count

  project                   = var.project_id
  zone                      = var.zone
  name                      = local.bridge_names[count.index]
  machine_type              = var.machine_type
  labels                    = local.labels
  deletion_protection       = var.deletion_protection
  allow_stopping_for_update = true

  boot_disk {
    initialize_params {
      image = var.boot_image
      size  = var.boot_disk_size_gb
      type  = "pd-balanced"
    }
  }

  network_interface {
    network    = var.network
    subnetwork = var.subnetwork

    access_config {
      nat_ip       = google_compute_address.bridge[count.index].address
      network_tier = "PREMIUM"
    }
  }

  service_account {
    email  = google_service_account.bridge.email
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    enable-oslogin         = "TRUE"
    block-project-ssh-keys = "TRUE"
    # `startup-script` (not the metadata_startup_script argument, which recreates the VM on every change):
    # runs on every boot; after a change, rerun it in place with `sudo google_metadata_script_runner startup`.
    startup-script = templatefile("${path.module}/startup.sh.tftpl", {
      project_id          = var.project_id
      node_major          = "22"
      release_url         = var.bridge_release_url == null ? "" : var.bridge_release_url
      release_gcs         = var.bridge_release_gcs == null ? "" : var.bridge_release_gcs
      release_sha256      = var.bridge_release_sha256 == null ? "" : var.bridge_release_sha256
      sip_password_secret = google_secret_manager_secret.sip_password[count.index].secret_id
      cloud_secret_secret = google_secret_manager_secret.cloud_secret.secret_id
      env_file_body       = local.env_file_bodies[count.index]
      systemd_unit        = file("${path.module}/../../systemd/patchbay-bridge.service")
      systemd_dropin      = local.systemd_dropin
    })
  }

  lifecycle {
    precondition {
      condition     = length(var.sip_extensions) == var.instance_count
      error_message = "sip_extensions must list exactly instance_count extensions (one per bridge)."
    }
    precondition {
      condition     = (var.bridge_release_url == null) != (var.bridge_release_gcs == null)
      error_message = "Set exactly one of bridge_release_url and bridge_release_gcs."
    }
    precondition {
      condition     = var.rtp_port_max > var.rtp_port_min + 2
      error_message = "rtp_port_max must be above rtp_port_min + 2."
    }
  }

  depends_on = [
    google_project_service.required,
    google_secret_manager_secret_iam_member.sip_password_access,
    google_secret_manager_secret_iam_member.cloud_secret_access,
    google_storage_bucket_iam_member.release_read,
  ]
}
