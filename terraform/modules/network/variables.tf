variable "name" {
  type        = string
  description = "Name prefix of every resource (for example fjord-prod)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 lower-case letters, digits or dashes, starting with a letter."
  }
}

variable "create_vpc" {
  type        = bool
  description = "Create a new VPC with private subnets (true), or use existing_vpc_id and existing_private_subnets (false)."
  default     = true
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR block of the new VPC (create_vpc = true). Private subnets are its first /20s, public subnets (for NAT) the /24s after them."
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) <= 18
    error_message = "vpc_cidr must be an IPv4 CIDR block of /18 or larger."
  }
}

variable "availability_zones" {
  type        = list(string)
  description = "Availability zones of the new VPC's subnets, one private subnet each (create_vpc = true): three for production, one for a single-AZ dev cluster."
  default     = []

  validation {
    condition     = length(var.availability_zones) <= 3 && length(distinct(var.availability_zones)) == length(var.availability_zones)
    error_message = "availability_zones holds at most three distinct zones."
  }
}

variable "nat_gateways" {
  type        = string
  description = "NAT gateways of the new VPC, for package downloads at boot: none (the AMI carries everything), single (one, in the first zone) or per_az (one per zone)."
  default     = "single"

  validation {
    condition     = contains(["none", "single", "per_az"], var.nat_gateways)
    error_message = "nat_gateways must be none, single or per_az."
  }
}

variable "existing_vpc_id" {
  type        = string
  description = "The VPC of existing_private_subnets (create_vpc = false)."
  default     = null
}

variable "existing_private_subnets" {
  type = list(object({
    id                = string
    cidr_block        = string
    availability_zone = string
    route_table_id    = string
  }))
  description = "Existing private subnets, one to three in distinct zones, with the route table each uses (create_vpc = false). The S3 gateway endpoint is attached to every one of these route tables."
  default     = []

  validation {
    condition     = length(var.existing_private_subnets) <= 3 && length(distinct([for s in var.existing_private_subnets : s.availability_zone])) == length(var.existing_private_subnets)
    error_message = "existing_private_subnets holds at most three subnets, in distinct availability zones."
  }
}

variable "existing_vpc_cidr" {
  type        = string
  description = "The CIDR block of existing_vpc_id (create_vpc = false); the agents accept their own traffic and the load balancer's health checks from it."
  default     = null
}

variable "allowed_client_cidrs" {
  type        = list(string)
  description = "CIDR blocks of the Kafka and HTTP/gRPC clients, allowed to the load balancer and to the agents on 9092 and 8080 (Kafka clients connect to each agent's advertised address after bootstrap)."

  validation {
    condition     = length(var.allowed_client_cidrs) > 0 && alltrue([for c in var.allowed_client_cidrs : can(cidrnetmask(c)) && c != "0.0.0.0/0"])
    error_message = "allowed_client_cidrs must list IPv4 CIDR blocks, and not 0.0.0.0/0: the cluster has no authentication of its own."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
