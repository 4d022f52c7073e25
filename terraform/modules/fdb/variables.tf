variable "name" {
  type        = string
  description = "Name prefix of every resource."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 lower-case letters, digits or dashes, starting with a letter."
  }
}

variable "mode" {
  type        = string
  description = "FoundationDB redundancy: double (3 slots in one zone, 3 coordinators: dev) or three_data_hall (9 slots, 3 in each of 3 zones, 9 coordinators, 3 per data hall: production)."
  default     = "three_data_hall"

  validation {
    condition     = contains(["double", "three_data_hall"], var.mode)
    error_message = "mode must be double or three_data_hall."
  }
}

variable "subnets" {
  type = list(object({
    id                = string
    cidr_block        = string
    availability_zone = string
  }))
  description = "Private subnets, one per availability zone (data hall): the first one in double mode, three in three_data_hall mode."

  validation {
    condition     = length(var.subnets) >= 1 && length(distinct([for s in var.subnets : s.availability_zone])) == length(var.subnets)
    error_message = "subnets must hold at least one subnet, each in its own availability zone."
  }
}

variable "security_group_id" {
  type        = string
  description = "The FoundationDB security group (4500 from the agents and FoundationDB only)."
}

variable "first_host_number" {
  type        = number
  description = "Host number, within each subnet, of the first slot's fixed private IP; the slots of a zone take this and the next numbers (AWS reserves host numbers 0-3)."
  default     = 10

  validation {
    condition     = var.first_host_number >= 4 && var.first_host_number <= 250
    error_message = "first_host_number must be between 4 and 250."
  }
}

variable "ami_id" {
  type        = string
  description = "AMI of the FoundationDB hosts; null takes the latest Amazon Linux 2023 for instance_architecture."
  default     = null
}

variable "instance_architecture" {
  type        = string
  description = "CPU architecture of instance_type: x86_64 or arm64."
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.instance_architecture)
    error_message = "instance_architecture must be x86_64 or arm64."
  }
}

variable "instance_type" {
  type        = string
  description = "EC2 instance type of a FoundationDB slot."
  default     = "m6i.large"
}

variable "data_volume_size_gb" {
  type        = number
  description = "Size of each slot's data volume, in GiB."
  default     = 100

  validation {
    condition     = var.data_volume_size_gb >= 10 && var.data_volume_size_gb <= 16384
    error_message = "data_volume_size_gb must be between 10 and 16384."
  }
}

variable "data_volume_iops" {
  type        = number
  description = "Provisioned IOPS of each gp3 data volume."
  default     = 3000

  validation {
    condition     = var.data_volume_iops >= 3000 && var.data_volume_iops <= 16000
    error_message = "data_volume_iops must be between 3000 and 16000 (gp3)."
  }
}

variable "data_volume_throughput" {
  type        = number
  description = "Provisioned throughput of each gp3 data volume, in MiB/s."
  default     = 250

  validation {
    condition     = var.data_volume_throughput >= 125 && var.data_volume_throughput <= 1000
    error_message = "data_volume_throughput must be between 125 and 1000 (gp3)."
  }
}

variable "ebs_kms_key_arn" {
  type        = string
  description = "KMS key of the encrypted root and data volumes; null uses the account's default EBS key."
  default     = null
}

variable "fdb_version" {
  type        = string
  description = "FoundationDB version installed from the official release packages (github.com/apple/foundationdb/releases); the agents' client library must be the same version."
  default     = "7.3.59"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.fdb_version))
    error_message = "fdb_version must be a release number such as 7.3.59."
  }
}

variable "storage_engine" {
  type        = string
  description = "Storage engine given to `configure new`."
  default     = "ssd-redwood-1"

  validation {
    condition     = contains(["ssd", "ssd-2", "ssd-redwood-1", "ssd-rocksdb-v1"], var.storage_engine)
    error_message = "storage_engine must be ssd, ssd-2, ssd-redwood-1 or ssd-rocksdb-v1."
  }
}

variable "cluster_id" {
  type        = string
  description = "The ID part of the cluster file (description:ID@coordinators); null derives a stable one from name. Changing it makes a new, empty cluster."
  default     = null

  validation {
    condition     = var.cluster_id == null || can(regex("^[A-Za-z0-9]{8,32}$", var.cluster_id))
    error_message = "cluster_id must be 8-32 letters or digits."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
