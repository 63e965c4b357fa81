output "bridge_ips" {
  description = "Static public IP of each bridge, in instance order. Give these to the PBX admin for the firewall / fail2ban whitelist."
  value       = google_compute_address.bridge[*].address
}

output "bridges" {
  description = "Per bridge: VM name, public IP, the extension it registers as, and its secret for the SIP password."
  value = {
    for index, name in local.bridge_names : name => {
      public_ip           = google_compute_address.bridge[index].address
      extension           = try(var.sip_extensions[index], null)
      sip_password_secret = google_secret_manager_secret.sip_password[index].secret_id
      zone                = var.zone
    }
  }
}

output "pbx_admin_settings" {
  description = "What to configure on the PBX for each bridge (see docs/pbx/)."
  value = join("\n", concat(
    [
      "Patchbay bridges for registrar ${var.sip_registrar}: one PJSIP extension each (docs/pbx/asterisk-pjsip.md, docs/pbx/freepbx.md).",
      "Common to all: transport ${var.sip_transport}; codecs ulaw,alaw; dtmf_mode=rfc4733; direct_media=no;",
      "  rtp_symmetric=yes, force_rport=yes, rewrite_contact=yes; session timers on (default); qualify_frequency=60.",
      "  The bridge sends RTP from UDP ${var.rtp_port_min}-${var.rtp_port_max} and SIP from port ${var.sip_port}; it accepts SIP/RTP only from ${join(", ", var.pbx_cidrs)}.",
    ],
    [
      for index, name in local.bridge_names :
      "- ${name}: extension ${try(var.sip_extensions[index], "?")}, registers from ${google_compute_address.bridge[index].address}:${var.sip_port}/${var.sip_transport} (permit ${google_compute_address.bridge[index].address}/32; whitelist this IP in fail2ban / Responsive Firewall); password: the value you put in secret ${google_secret_manager_secret.sip_password[index].secret_id}."
    ],
  ))
}

output "populate_secrets" {
  description = "Commands that add the secret values (run once, and again to rotate; then rerun the startup script). Values never enter Terraform state."
  value = join("\n", concat(
    [
      "# The Worker/bridge shared secret (same value as `wrangler secret put BRIDGE_SECRET`):",
      "openssl rand -base64 32 | tr -d '\\n' | gcloud secrets versions add ${google_secret_manager_secret.cloud_secret.secret_id} --project=${var.project_id} --data-file=-",
      "# Each bridge's extension password, as set on the PBX (read it without echo):",
    ],
    [
      for secret in google_secret_manager_secret.sip_password :
      "read -rs -p 'SIP password for ${secret.secret_id}: ' pw && printf '%s' \"$pw\" | gcloud secrets versions add ${secret.secret_id} --project=${var.project_id} --data-file=- && unset pw"
    ],
  ))
}

output "ssh_commands" {
  description = "SSH to each bridge through IAP with OS Login (needs roles/iap.tunnelResourceAccessor and roles/compute.osAdminLogin)."
  value       = [for name in local.bridge_names : "gcloud compute ssh ${name} --project=${var.project_id} --zone=${var.zone} --tunnel-through-iap"]
}

output "service_account_email" {
  description = "The bridges' service account (reads the two kinds of secret, and the release bucket if bridge_release_gcs is set)."
  value       = google_service_account.bridge.email
}
