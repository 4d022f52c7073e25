variable "region" {
  type        = string
  description = "AWS region of the cluster."
  default     = "us-east-1"
}

variable "name" {
  type        = string
  description = "Name prefix of every resource."
  default     = "fjord-dev"
}

variable "availability_zone" {
  type        = string
  description = "The one availability zone of the dev cluster."
  default     = "us-east-1a"
}

variable "bucket_name" {
  type        = string
  description = "Name of the segment bucket (globally unique)."
}

variable "allowed_client_cidrs" {
  type        = list(string)
  description = "CIDR blocks of the Kafka and HTTP clients (for example the VPN's or a peered VPC's)."
}

variable "agent_image" {
  type        = string
  description = "Container image of the agent (the repository's Dockerfile), pinned by digest; null runs the binary instead."
  default     = null
}

variable "agent_download_url" {
  type        = string
  description = "HTTPS URL of the fjord binary built with --features fdb; null when the AMI carries /usr/local/bin/fjord."
  default     = null
}

variable "agent_download_sha256" {
  type        = string
  description = "SHA-256 of the binary at agent_download_url."
  default     = null
}
