terraform {
  # 1.5: `check` blocks and stable preconditions; tested with Terraform 1.11.
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 5.x introduced the `auto {}` replication block used below; 7.x is current (Nov 2026).
      version = ">= 5.0.0, < 8.0.0"
    }
  }
}
