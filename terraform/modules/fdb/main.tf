# FoundationDB on EC2 "slots". A slot is a fixed private IP (its own network
# interface) and a data volume, both outliving the instance: a replaced instance
# boots with the same address and the same data, so the cluster file's
# coordinators never change.
#
# Layouts, after FoundationDB's guidance:
#   double          1 data hall, 3 slots, 3 coordinators                  (dev)
#   three_data_hall 3 data halls (one per zone), 3 slots each = 9 slots,
#                   9 coordinators, 3 per data hall                       (production)

data "aws_region" "current" {}

data "aws_ssm_parameter" "al2023" {
  count = var.ami_id == null ? 1 : 0

  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${var.instance_architecture}"
}

locals {
  fdb_port = 4500

  layouts = {
    double = {
      data_halls            = 1
      slots_per_hall        = 3
      coordinators_per_hall = 3
    }
    three_data_hall = {
      data_halls            = 3
      slots_per_hall        = 3
      coordinators_per_hall = 3
    }
  }
  layout = local.layouts[var.mode]

  # One subnet per data hall (the precondition below rejects too few subnets;
  # the index is clamped so that it, not an index error, reports it).
  hall_subnets = [for h in range(local.layout.data_halls) : var.subnets[min(h, length(var.subnets) - 1)]]

  slots = {
    for i in range(local.layout.data_halls * local.layout.slots_per_hall) : format("slot-%d", i) => {
      hall              = floor(i / local.layout.slots_per_hall)
      index_in_hall     = i % local.layout.slots_per_hall
      subnet_id         = local.hall_subnets[floor(i / local.layout.slots_per_hall)].id
      availability_zone = local.hall_subnets[floor(i / local.layout.slots_per_hall)].availability_zone
      ip                = cidrhost(local.hall_subnets[floor(i / local.layout.slots_per_hall)].cidr_block, var.first_host_number + i % local.layout.slots_per_hall)
      coordinator       = i % local.layout.slots_per_hall < local.layout.coordinators_per_hall
    }
  }

  coordinators = [for key in sort(keys(local.slots)) : "${local.slots[key].ip}:${local.fdb_port}" if local.slots[key].coordinator]

  description  = replace(var.name, "-", "_")
  cluster_id   = coalesce(var.cluster_id, substr(sha256("${var.name}/fdb"), 0, 16))
  cluster_file = "${local.description}:${local.cluster_id}@${join(",", local.coordinators)}"

  ami_id = var.ami_id != null ? var.ami_id : nonsensitive(data.aws_ssm_parameter.al2023[0].value)
  tags   = merge(var.tags, { "fjord:cluster" = var.name, "fjord:component" = "foundationdb" })
}

resource "terraform_data" "checks" {
  input = var.mode

  lifecycle {
    precondition {
      condition     = length(var.subnets) >= local.layout.data_halls
      error_message = "mode ${var.mode} needs ${local.layout.data_halls} subnet(s) in distinct availability zones."
    }
  }
}

resource "aws_network_interface" "slot" {
  for_each = local.slots

  subnet_id       = each.value.subnet_id
  private_ips     = [each.value.ip]
  security_groups = [var.security_group_id]
  description     = "${var.name} FoundationDB ${each.key} (fixed address)"

  tags = merge(local.tags, { Name = "${var.name}-fdb-${each.key}" })
}

resource "aws_ebs_volume" "data" {
  for_each = local.slots

  availability_zone = each.value.availability_zone
  size              = var.data_volume_size_gb
  type              = "gp3"
  iops              = var.data_volume_iops
  throughput        = var.data_volume_throughput
  encrypted         = true
  kms_key_id        = var.ebs_kms_key_arn

  tags = merge(local.tags, { Name = "${var.name}-fdb-${each.key}-data" })
}

resource "aws_instance" "slot" {
  for_each = local.slots

  ami           = local.ami_id
  instance_type = var.instance_type
  ebs_optimized = true
  monitoring    = true

  network_interface {
    network_interface_id = aws_network_interface.slot[each.key].id
    device_index         = 0
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = 20
    encrypted   = true
    kms_key_id  = var.ebs_kms_key_arn
  }

  user_data = templatefile("${path.module}/templates/fdb-user-data.sh.tftpl", {
    fdb_version        = var.fdb_version
    cluster_file       = local.cluster_file
    data_hall          = each.value.availability_zone
    zone_id            = "${var.name}-${each.key}"
    volume_id          = aws_ebs_volume.data[each.key].id
    configure_database = each.key == "slot-0"
    redundancy_mode    = var.mode
    storage_engine     = var.storage_engine
    port               = local.fdb_port
  })

  tags = merge(local.tags, { Name = "${var.name}-fdb-${each.key}", "fjord:data-hall" = each.value.availability_zone })

  lifecycle {
    # A new AMI does not replace a running slot: replace slots one at a time
    # (terraform apply -replace) and let FoundationDB re-replicate between them.
    ignore_changes = [ami]
  }
}

resource "aws_volume_attachment" "data" {
  for_each = local.slots

  device_name                    = "/dev/sdf"
  volume_id                      = aws_ebs_volume.data[each.key].id
  instance_id                    = aws_instance.slot[each.key].id
  stop_instance_before_detaching = true
}

# The cluster file, for the agents (read at boot through ssm:GetParameter).
# It holds addresses only, no secret: a String parameter.
resource "aws_ssm_parameter" "cluster_file" {
  name        = "/${var.name}/foundationdb/cluster-file"
  description = "FoundationDB cluster file of ${var.name} (${var.mode})"
  type        = "String"
  value       = local.cluster_file

  tags = local.tags
}
