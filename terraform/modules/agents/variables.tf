variable "name" {
  type        = string
  description = "Name prefix of every resource."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,24}$", var.name))
    error_message = "name must be 2-25 lower-case letters, digits or dashes, starting with a letter (load balancer names are short)."
  }
}

variable "vpc_id" {
  type        = string
  description = "The VPC of the cluster."
}

variable "subnets" {
  type = list(object({
    id                = string
    cidr_block        = string
    availability_zone = string
  }))
  description = "Private subnets, one per availability zone: one serving auto-scaling group per subnet; the load balancer spans them all."

  validation {
    condition     = length(var.subnets) >= 1 && length(var.subnets) <= 3
    error_message = "subnets must hold one to three subnets."
  }
}

variable "agents_security_group_id" {
  type        = string
  description = "The security group of the agents."
}

variable "lb_security_group_id" {
  type        = string
  description = "The security group of the internal load balancer."
}

variable "serve_instance_profile_name" {
  type        = string
  description = "Instance profile of the serving agents (no s3:DeleteObject)."
}

variable "serve_role_name" {
  type        = string
  description = "Role of the serving agents; it is allowed to complete its own auto-scaling groups' lifecycle actions."
}

variable "jobs_instance_profile_name" {
  type        = string
  description = "Instance profile of the jobs agents (retention and garbage collection)."
}

variable "jobs_role_name" {
  type        = string
  description = "Role of the jobs agents; it is allowed to complete its own auto-scaling group's lifecycle actions."
}

variable "bucket_name" {
  type        = string
  description = "The segment bucket: --storage-url is s3://<bucket_name>/<prefix>."
}

variable "prefix" {
  type        = string
  description = "Key prefix of Fjord's objects in the bucket."
  default     = "fjord"

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.()'-]+(/[A-Za-z0-9!_.()'-]+)*$", var.prefix))
    error_message = "prefix must be a non-empty key prefix without leading or trailing slashes."
  }
}

variable "cluster_file_parameter_name" {
  type        = string
  description = "Name of the SSM parameter holding the FoundationDB cluster file; fetched at boot into /etc/foundationdb/fdb.cluster (--metadata-url fdb:///etc/foundationdb/fdb.cluster)."
}

variable "fdb_version" {
  type        = string
  description = "Version of the FoundationDB client library installed on the agents (the same as the servers')."
  default     = "7.3.59"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.fdb_version))
    error_message = "fdb_version must be a release number such as 7.3.59."
  }
}

variable "agent_download_url" {
  type        = string
  description = "HTTPS URL of the fjord binary (built with --features fdb) downloaded to /usr/local/bin/fjord at boot; null when the AMI already has it."
  default     = null

  validation {
    condition     = var.agent_download_url == null || can(regex("^https://", var.agent_download_url))
    error_message = "agent_download_url must be an https:// URL."
  }
}

variable "agent_image" {
  type        = string
  description = "Container image of the agent (built from the repository's Dockerfile, with FoundationDB support), run with Docker on the host's network instead of a binary; pin it by digest. null runs the binary (agent_download_url, or the AMI's)."
  default     = null

  validation {
    condition     = var.agent_image == null || can(regex("^[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?$", var.agent_image))
    error_message = "agent_image must be an image reference (registry/name:tag or @sha256:digest)."
  }
}

variable "agent_download_sha256" {
  type        = string
  description = "SHA-256 of the binary at agent_download_url, checked before it is installed (required with agent_download_url)."
  default     = null

  validation {
    condition     = var.agent_download_sha256 == null || can(regex("^[0-9a-f]{64}$", var.agent_download_sha256))
    error_message = "agent_download_sha256 must be 64 lower-case hex digits."
  }
}

variable "ami_id" {
  type        = string
  description = "AMI of the agents; null takes the latest Amazon Linux 2023 for instance_architecture."
  default     = null
}

variable "instance_architecture" {
  type        = string
  description = "CPU architecture of the instance types: x86_64 or arm64."
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.instance_architecture)
    error_message = "instance_architecture must be x86_64 or arm64."
  }
}

variable "serve_instance_type" {
  type        = string
  description = "EC2 instance type of the serving agents."
  default     = "m6i.xlarge"
}

variable "jobs_instance_type" {
  type        = string
  description = "EC2 instance type of the jobs agents."
  default     = "m6i.large"
}

variable "root_volume_size_gb" {
  type        = number
  description = "Root volume of each agent, in GiB: it holds the write-ahead log and the read cache under /var/lib/fjord."
  default     = 64

  validation {
    condition     = var.root_volume_size_gb >= 16
    error_message = "root_volume_size_gb must be at least 16."
  }
}

variable "ebs_kms_key_arn" {
  type        = string
  description = "KMS key of the encrypted root volumes; null uses the account's default EBS key."
  default     = null
}

variable "serve_min_per_az" {
  type        = number
  description = "Minimum serving agents in each availability zone."
  default     = 1

  validation {
    condition     = var.serve_min_per_az >= 0
    error_message = "serve_min_per_az must not be negative."
  }
}

variable "serve_desired_per_az" {
  type        = number
  description = "Serving agents started in each availability zone."
  default     = 1

  validation {
    condition     = var.serve_desired_per_az >= 0
    error_message = "serve_desired_per_az must not be negative."
  }
}

variable "serve_max_per_az" {
  type        = number
  description = "Maximum serving agents in each availability zone."
  default     = 4

  validation {
    condition     = var.serve_max_per_az >= 1
    error_message = "serve_max_per_az must be at least 1."
  }
}

variable "jobs_count" {
  type        = number
  description = "Jobs agents (retention and garbage collection): 1 or 2."
  default     = 1

  validation {
    condition     = var.jobs_count >= 1 && var.jobs_count <= 2
    error_message = "jobs_count must be 1 or 2."
  }
}

variable "shutdown_timeout_ms" {
  type        = number
  description = "The agent's --shutdown-timeout-ms: how long a SIGTERM hand-off waits for the bucket and metadata store."
  default     = 20000

  validation {
    condition     = var.shutdown_timeout_ms >= 1000
    error_message = "shutdown_timeout_ms must be at least 1000."
  }
}

variable "lifecycle_heartbeat_timeout_seconds" {
  type        = number
  description = "How long a terminating instance waits in Terminating:Wait for the agent's hand-off; at least the shutdown timeout plus 30 s."
  default     = 120

  validation {
    condition     = var.lifecycle_heartbeat_timeout_seconds >= 30 && var.lifecycle_heartbeat_timeout_seconds <= 7200
    error_message = "lifecycle_heartbeat_timeout_seconds must be between 30 and 7200."
  }
}

variable "extra_settings" {
  type        = map(string)
  description = "More agent settings, written to /etc/fjord/agent.toml as `name = value`: each value is a TOML literal (quote strings yourself), for example { \"log-retention-hours\" = \"72\" }."
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.extra_settings) : can(regex("^[a-z][a-z0-9-]*$", k))])
    error_message = "extra_settings keys must be agent setting names (lower-case, dashes)."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the load balancer from deletion (turn off for dev clusters you destroy)."
  default     = true
}
