variable "name" {
  type        = string
  description = "Name prefix of the roles and instance profiles."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 lower-case letters, digits or dashes, starting with a letter."
  }
}

variable "bucket_arn" {
  type        = string
  description = "ARN of the segment bucket (arn:aws:s3:::name)."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]+$", var.bucket_arn))
    error_message = "bucket_arn must be the ARN of a general-purpose S3 bucket, without a key part."
  }
}

variable "prefix" {
  type        = string
  description = "Key prefix of Fjord's objects in the bucket (the path of --storage-url s3://bucket/prefix). The roles can read and write only under it."
  default     = "fjord"

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.()'-]+(/[A-Za-z0-9!_.()'-]+)*$", var.prefix))
    error_message = "prefix must be a non-empty key prefix without leading or trailing slashes and without wildcards."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "The customer-managed KMS key of the bucket's encryption, if any: the roles may generate data keys with it and decrypt with it."
  default     = null
}

variable "express_bucket_arn" {
  type        = string
  description = "ARN of the S3 Express directory bucket, if any: the roles may create sessions on it."
  default     = null
}

variable "cluster_file_parameter_arn" {
  type        = string
  description = "ARN of the SSM parameter holding the FoundationDB cluster file; the roles may read this parameter only."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:parameter/.+$", var.cluster_file_parameter_arn))
    error_message = "cluster_file_parameter_arn must be an SSM parameter ARN."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
