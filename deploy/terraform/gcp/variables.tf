# Every variable is documented in README.md (a test checks that the two lists agree).

# --- Where ---------------------------------------------------------------------------------------

variable "project_id" {
  description = "GCP project that hosts the bridge VMs, their IPs, service account and secrets."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project ID (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region of the static external IPs. Pick the one nearest your PBX: every audio packet crosses this path."
  type        = string
  default     = "us-central1"
}

variable "zone" {
  description = "Zone of the VMs; must be inside `region`."
  type        = string
  default     = "us-central1-a"
}

variable "name" {
  description = "Name prefix for every resource. VMs are `<name>-0`, `<name>-1`, …; also used as BRIDGE_ID."
  type        = string
  default     = "patchbay-bridge"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", var.name))
    error_message = "name must be 3-42 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "labels" {
  description = "Labels added to the VMs, IPs and secrets (e.g. { env = \"prod\", team = \"voice\" })."
  type        = map(string)
  default     = {}
}

variable "enable_apis" {
  description = "Enable the Compute, Secret Manager and IAP APIs in the project. Set false if your platform team manages APIs."
  type        = bool
  default     = true
}

# --- The VMs -------------------------------------------------------------------------------------

variable "instance_count" {
  description = "How many bridges to run. Each gets its own static IP and registers as its own extension (one per entry of sip_extensions); put them in a ring group or queue on the PBX."
  type        = number
  default     = 1

  validation {
    condition     = var.instance_count >= 1 && var.instance_count <= 20 && floor(var.instance_count) == var.instance_count
    error_message = "instance_count must be a whole number from 1 to 20."
  }
}

variable "machine_type" {
  description = "VM machine type. e2-standard-2 (2 vCPU, 8 GB) carries well over 50 concurrent G.711 calls."
  type        = string
  default     = "e2-standard-2"
}

variable "boot_image" {
  description = "Boot image. The startup script targets Debian 12 (apt, gcloud preinstalled on GCE images)."
  type        = string
  default     = "debian-cloud/debian-12"
}

variable "boot_disk_size_gb" {
  description = "Boot disk size in GB. Raise it if you enable recording (WAV: about 1 MB per call-minute)."
  type        = number
  default     = 20
}

variable "network" {
  description = "VPC network name or self link for the VMs and firewall rules."
  type        = string
  default     = "default"
}

variable "subnetwork" {
  description = "Subnetwork name or self link (required for custom-mode VPCs); null uses the network's subnet in `region`."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Protect the VMs from `terraform destroy` and console deletion."
  type        = bool
  default     = false
}

# --- The bridge release --------------------------------------------------------------------------

variable "bridge_release_url" {
  description = "HTTPS URL of the bridge tarball built by `pnpm --filter @patchbay/bridge build -- --pack` (dist/patchbay-bridge.tar.gz). Set this or bridge_release_gcs."
  type        = string
  default     = null

  validation {
    condition     = var.bridge_release_url == null || can(regex("^https://[^\\s'\"`$\\\\]+$", var.bridge_release_url))
    error_message = "bridge_release_url must be an https:// URL without spaces or quotes."
  }
}

variable "bridge_release_gcs" {
  description = "The same tarball as a Cloud Storage object, gs://bucket/path/patchbay-bridge.tar.gz. The VM's service account gets read access to that bucket. Set this or bridge_release_url."
  type        = string
  default     = null

  validation {
    condition     = var.bridge_release_gcs == null || can(regex("^gs://[a-z0-9][a-z0-9._-]{1,220}/[^\\s'\"`$\\\\]+$", var.bridge_release_gcs))
    error_message = "bridge_release_gcs must look like gs://bucket/path/patchbay-bridge.tar.gz."
  }
}

variable "bridge_release_sha256" {
  description = "Expected SHA-256 of the tarball (`sha256sum dist/patchbay-bridge.tar.gz`). Strongly recommended: the VM refuses a tarball that does not match."
  type        = string
  default     = null

  validation {
    condition     = var.bridge_release_sha256 == null || can(regex("^[0-9a-f]{64}$", var.bridge_release_sha256))
    error_message = "bridge_release_sha256 must be 64 lowercase hex digits."
  }
}

# --- SIP and the PBX -----------------------------------------------------------------------------

variable "pbx_cidrs" {
  description = "Public addresses (CIDRs) your PBX sends SIP and RTP from, as seen from GCP. The only sources allowed to reach the SIP port and RTP range; also passed to the bridge as SIP_ALLOWED_SOURCES."
  type        = list(string)

  validation {
    condition     = length(var.pbx_cidrs) > 0 && alltrue([for cidr in var.pbx_cidrs : can(cidrhost(cidr, 0)) && !startswith(cidr, "0.0.0.0/") && cidr != "::/0"])
    error_message = "pbx_cidrs must list at least one CIDR such as 203.0.113.10/32, and never 0.0.0.0/0."
  }
}

variable "sip_registrar" {
  description = "The PBX as host or host:port (SIP_REGISTRAR), e.g. pbx.example.com:5060."
  type        = string

  validation {
    condition     = can(regex("^(\\[[0-9a-fA-F:]+\\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$", var.sip_registrar))
    error_message = "sip_registrar must be host or host:port."
  }
}

variable "sip_domain" {
  description = "SIP domain for From/To/AOR (SIP_DOMAIN) when it differs from the registrar host; null = registrar host."
  type        = string
  default     = null
}

variable "sip_extensions" {
  description = "The extension each bridge registers as (SIP_USERNAME), one per instance, in order: bridge <name>-0 uses the first."
  type        = list(string)

  validation {
    condition     = length(var.sip_extensions) > 0 && alltrue([for ext in var.sip_extensions : can(regex("^[A-Za-z0-9._+-]{1,64}$", ext))])
    error_message = "sip_extensions must be a non-empty list of SIP user names (letters, digits, . _ + -)."
  }
}

variable "sip_transport" {
  description = "SIP transport toward the PBX (SIP_TRANSPORT): udp or tcp. The firewall opens both on sip_port."
  type        = string
  default     = "udp"

  validation {
    condition     = contains(["udp", "tcp"], var.sip_transport)
    error_message = "sip_transport must be udp or tcp."
  }
}

variable "sip_port" {
  description = "Local SIP port of the bridge (SIP_LOCAL_PORT). Ports below 1024 get CAP_NET_BIND_SERVICE through a systemd drop-in."
  type        = number
  default     = 5060

  validation {
    condition     = var.sip_port >= 1 && var.sip_port <= 65535
    error_message = "sip_port must be 1-65535."
  }
}

variable "rtp_port_min" {
  description = "First UDP port of the RTP range (RTP_PORT_MIN), even."
  type        = number
  default     = 10000

  validation {
    condition     = var.rtp_port_min >= 1024 && var.rtp_port_min % 2 == 0
    error_message = "rtp_port_min must be even and at least 1024."
  }
}

variable "rtp_port_max" {
  description = "Last UDP port of the RTP range (RTP_PORT_MAX). Each call uses two ports (RTP + RTCP)."
  type        = number
  default     = 20000

  validation {
    condition     = var.rtp_port_max <= 65535
    error_message = "rtp_port_max must be at most 65535."
  }
}

# --- The Worker link and the process -------------------------------------------------------------

variable "cloud_url" {
  description = "Worker base URL (CLOUD_URL), e.g. wss://patchbay.example.workers.dev. Must be TLS (wss:// or https://)."
  type        = string

  validation {
    condition     = can(regex("^(wss|https)://[^\\s'\"`$\\\\]+$", var.cloud_url))
    error_message = "cloud_url must start with wss:// or https:// (the Worker link carries call audio: TLS only)."
  }
}

variable "health_port" {
  description = "Port of /healthz and /metrics (HTTP_PORT). Bound on all interfaces; the firewall admits only Google's health-check ranges."
  type        = number
  default     = 9090

  validation {
    condition     = var.health_port >= 1024 && var.health_port <= 65535
    error_message = "health_port must be 1024-65535."
  }
}

variable "drain_timeout_s" {
  description = "Seconds live calls may continue after SIGTERM (DRAIN_TIMEOUT). systemd's TimeoutStopSec is set 30 s above it."
  type        = number
  default     = 300

  validation {
    condition     = var.drain_timeout_s >= 0 && var.drain_timeout_s <= 86400
    error_message = "drain_timeout_s must be 0-86400."
  }
}

variable "recording_enabled" {
  description = "Record calls to WAV under /var/lib/patchbay/recordings (RECORDING_ENABLED). Check the law where your callers are first."
  type        = bool
  default     = false
}

variable "log_level" {
  description = "Bridge log level (LOG_LEVEL): fatal, error, warn, info, debug or trace."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["fatal", "error", "warn", "info", "debug", "trace"], var.log_level)
    error_message = "log_level must be fatal, error, warn, info, debug or trace."
  }
}

variable "extra_env" {
  description = "Further bridge settings by environment variable name (see deploy/bridge.env.example), e.g. { SIP_REJECT_MODE = \"silent\" }. Secrets are not accepted here: they would be readable in instance metadata."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([for key in keys(var.extra_env) : contains([
      "SIP_AUTH_USERNAME", "SIP_REGISTER_EXPIRES", "SIP_KEEPALIVE", "SIP_KEEPALIVE_INTERVAL", "SIP_REJECT_MODE",
      "SIP_ANSWER_DELAY_MS", "SIP_SEND_RINGING", "SIP_MAX_CALL_SECONDS", "SIP_SESSION_EXPIRES",
      "SIP_MIN_SESSION_EXPIRES", "SIP_MAX_CONCURRENT_CALLS", "SIP_FORWARD_HEADERS", "SIP_TRACE", "RTP_LATCH",
      "RTP_TIMEOUT", "RTP_IDLE", "RECORDING_PATH", "CLOUD_FALLBACK", "CLOUD_FALLBACK_TARGET",
      "CLOUD_CONNECT_TIMEOUT_MS", "OUTBOUND_ENABLED", "OUTBOUND_ALLOWED_DESTINATIONS", "OUTBOUND_ALLOWED_HOSTS",
      "OUTBOUND_MAX_CALLS", "OUTBOUND_CPS", "OUTBOUND_BURST", "OUTBOUND_MAX_QUEUE_DELAY_MS", "OUTBOUND_RING_TIMEOUT",
      "OUTBOUND_MAX_DURATION", "OUTBOUND_FOLLOW_REDIRECTS", "TRANSFER_ALLOWED_DESTINATIONS", "TRANSFER_WARM_METHOD",
    ], key)])
    error_message = "extra_env accepts only bridge settings that Terraform does not already set, and no secrets (see README.md)."
  }

  validation {
    condition     = alltrue([for value in values(var.extra_env) : !can(regex("[\\r\\n]", value))])
    error_message = "extra_env values must be single lines."
  }
}
