variable "region" {
  type        = string
  description = "AWS region of the cluster."
  default     = "us-east-1"
}

variable "name" {
  type        = string
  description = "Name prefix of every resource."
  default     = "fjord-prod"
}

variable "availability_zones" {
  type        = list(string)
  description = "The three availability zones of the cluster (one FoundationDB data hall each)."
  default     = ["us-east-1a", "us-east-1b", "us-east-1c"]

  validation {
    condition     = length(var.availability_zones) == 3 && length(distinct(var.availability_zones)) == 3
    error_message = "availability_zones must name three distinct zones."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR block of the new VPC."
  default     = "10.40.0.0/16"
}

variable "bucket_name" {
  type        = string
  description = "Name of the segment bucket (globally unique)."
}

variable "kms_key_arn" {
  type        = string
  description = "Customer-managed KMS key of the bucket and the EBS volumes; null uses the AWS-managed keys."
  default     = null
}

variable "express_availability_zone_id" {
  type        = string
  description = "Also create an S3 Express One Zone directory bucket in this zone ID (for example use1-az4); null creates none."
  default     = null
}

variable "allowed_client_cidrs" {
  type        = list(string)
  description = "CIDR blocks of the Kafka and HTTP clients."
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

variable "serve_desired_per_az" {
  type        = number
  description = "Serving agents in each availability zone."
  default     = 2

  validation {
    condition     = var.serve_desired_per_az >= 1
    error_message = "serve_desired_per_az must be at least 1 in production."
  }
}
