# Fjord agents on EC2: serving agents in one auto-scaling group per zone
# behind an internal network load balancer (9092 Kafka bootstrap, 8080
# HTTP/gRPC), and a small jobs group (retention, garbage collection).
#
# Graceful hand-off on scale-in: every group has a lifecycle hook on
# autoscaling:EC2_INSTANCE_TERMINATING. While the instance waits in
# Terminating:Wait, a watcher on it sees the target lifecycle state
# "Terminated" (instance metadata), stops the agent with systemd (SIGTERM: the
# agent drains, commits and releases its partitions within
# --shutdown-timeout-ms) and completes the lifecycle action. The hook's
# heartbeat timeout is at least the unit's stop timeout, so the hand-off
# always finishes before EC2 terminates the instance.

data "aws_region" "current" {}

data "aws_ssm_parameter" "al2023" {
  count = var.ami_id == null ? 1 : 0

  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${var.instance_architecture}"
}

locals {
  kafka_port = 9092
  http_port  = 8080

  storage_url   = "s3://${var.bucket_name}/${var.prefix}"
  subnets_by_az = { for s in var.subnets : s.availability_zone => s }

  # systemd's stop timeout: the agent's own shutdown timeout and a margin.
  stop_timeout_seconds = ceil(var.shutdown_timeout_ms / 1000) + 30
  hook_name            = "${var.name}-hand-off"
  serve_group_names    = { for az, s in local.subnets_by_az : az => "${var.name}-serve-${az}" }
  jobs_group_name      = "${var.name}-jobs"

  ami_id = var.ami_id != null ? var.ami_id : nonsensitive(data.aws_ssm_parameter.al2023[0].value)
  tags   = merge(var.tags, { "fjord:cluster" = var.name })

  user_data_settings = {
    region                      = data.aws_region.current.name
    fdb_version                 = var.fdb_version
    cluster_file_parameter_name = var.cluster_file_parameter_name
    storage_url                 = local.storage_url
    kafka_port                  = local.kafka_port
    http_port                   = local.http_port
    shutdown_timeout_ms         = var.shutdown_timeout_ms
    stop_timeout_seconds        = local.stop_timeout_seconds
    hook_name                   = local.hook_name
    agent_download_url          = var.agent_download_url == null ? "" : var.agent_download_url
    agent_download_sha256       = var.agent_download_sha256 == null ? "" : var.agent_download_sha256
    agent_image                 = var.agent_image == null ? "" : var.agent_image
    extra_settings              = var.extra_settings
  }
}

resource "terraform_data" "checks" {
  input = var.name

  lifecycle {
    precondition {
      condition     = var.agent_download_url == null || var.agent_download_sha256 != null
      error_message = "agent_download_url needs agent_download_sha256."
    }
    precondition {
      condition     = var.agent_image == null || var.agent_download_url == null
      error_message = "give agent_image or agent_download_url, not both."
    }
    precondition {
      condition     = var.serve_min_per_az <= var.serve_desired_per_az && var.serve_desired_per_az <= var.serve_max_per_az
      error_message = "serve_min_per_az <= serve_desired_per_az <= serve_max_per_az must hold."
    }
  }
}

# --- Internal network load balancer ---------------------------------------

resource "aws_lb" "this" {
  name                             = "${var.name}-nlb"
  internal                         = true
  load_balancer_type               = "network"
  subnets                          = [for s in var.subnets : s.id]
  security_groups                  = [var.lb_security_group_id]
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = var.deletion_protection

  tags = local.tags
}

# Kafka bootstrap: clients fetch metadata here, then connect to each agent's
# advertised address. Only ready agents (/readyz) receive connections.
resource "aws_lb_target_group" "kafka" {
  name                 = "${var.name}-kafka"
  port                 = local.kafka_port
  protocol             = "TCP"
  vpc_id               = var.vpc_id
  target_type          = "instance"
  deregistration_delay = ceil(var.shutdown_timeout_ms / 1000)

  health_check {
    protocol            = "HTTP"
    port                = tostring(local.http_port)
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = local.tags
}

resource "aws_lb_target_group" "http" {
  name                 = "${var.name}-http"
  port                 = local.http_port
  protocol             = "TCP"
  vpc_id               = var.vpc_id
  target_type          = "instance"
  deregistration_delay = ceil(var.shutdown_timeout_ms / 1000)

  health_check {
    protocol            = "HTTP"
    port                = "traffic-port"
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = local.tags
}

resource "aws_lb_listener" "kafka" {
  load_balancer_arn = aws_lb.this.arn
  port              = local.kafka_port
  protocol          = "TCP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.kafka.arn
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.this.arn
  port              = local.http_port
  protocol          = "TCP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.http.arn
  }
}

# --- Serving agents: one launch template and group per zone ---------------

resource "aws_launch_template" "serve" {
  for_each = local.subnets_by_az

  name_prefix            = "${local.serve_group_names[each.key]}-"
  description            = "Fjord serving agents in ${each.key}"
  image_id               = local.ami_id
  instance_type          = var.serve_instance_type
  ebs_optimized          = true
  update_default_version = true
  vpc_security_group_ids = [var.agents_security_group_id]

  iam_instance_profile {
    name = var.serve_instance_profile_name
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = var.root_volume_size_gb
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = var.ebs_kms_key_arn
      delete_on_termination = true
    }
  }

  user_data = base64encode(templatefile("${path.module}/templates/agent-user-data.sh.tftpl", merge(local.user_data_settings, {
    roles      = "serve"
    group_name = local.serve_group_names[each.key]
  })))

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = local.serve_group_names[each.key], "fjord:role" = "serve" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { Name = local.serve_group_names[each.key], "fjord:role" = "serve" })
  }

  tags = local.tags
}

resource "aws_autoscaling_group" "serve" {
  for_each = local.subnets_by_az

  name                      = local.serve_group_names[each.key]
  vpc_zone_identifier       = [each.value.id]
  min_size                  = var.serve_min_per_az
  max_size                  = var.serve_max_per_az
  desired_capacity          = var.serve_desired_per_az
  health_check_type         = "ELB"
  health_check_grace_period = 120
  default_instance_warmup   = 60
  target_group_arns         = [aws_lb_target_group.kafka.arn, aws_lb_target_group.http.arn]
  termination_policies      = ["OldestLaunchTemplate", "OldestInstance"]

  launch_template {
    id      = aws_launch_template.serve[each.key].id
    version = aws_launch_template.serve[each.key].latest_version
  }

  # A new launch template version rolls the group one instance at a time;
  # each replaced instance hands its partitions off through the hook below.
  instance_refresh {
    strategy = "Rolling"

    preferences {
      min_healthy_percentage = 100
      max_healthy_percentage = 200
    }
  }

  dynamic "tag" {
    for_each = merge(local.tags, { "fjord:role" = "serve" })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }
}

resource "aws_autoscaling_lifecycle_hook" "serve_terminating" {
  for_each = aws_autoscaling_group.serve

  name                   = local.hook_name
  autoscaling_group_name = each.value.name
  lifecycle_transition   = "autoscaling:EC2_INSTANCE_TERMINATING"
  heartbeat_timeout      = var.lifecycle_heartbeat_timeout_seconds
  default_result         = "CONTINUE"

  lifecycle {
    precondition {
      condition     = var.lifecycle_heartbeat_timeout_seconds >= local.stop_timeout_seconds
      error_message = "lifecycle_heartbeat_timeout_seconds must be at least shutdown_timeout_ms / 1000 + 30 s, or EC2 terminates agents mid-hand-off."
    }
  }
}

# --- Jobs agents: one small group over every zone -------------------------

resource "aws_launch_template" "jobs" {
  name_prefix            = "${local.jobs_group_name}-"
  description            = "Fjord jobs agents (retention, garbage collection)"
  image_id               = local.ami_id
  instance_type          = var.jobs_instance_type
  ebs_optimized          = true
  update_default_version = true
  vpc_security_group_ids = [var.agents_security_group_id]

  iam_instance_profile {
    name = var.jobs_instance_profile_name
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = var.root_volume_size_gb
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = var.ebs_kms_key_arn
      delete_on_termination = true
    }
  }

  user_data = base64encode(templatefile("${path.module}/templates/agent-user-data.sh.tftpl", merge(local.user_data_settings, {
    roles      = "jobs"
    group_name = local.jobs_group_name
  })))

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = local.jobs_group_name, "fjord:role" = "jobs" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { Name = local.jobs_group_name, "fjord:role" = "jobs" })
  }

  tags = local.tags
}

resource "aws_autoscaling_group" "jobs" {
  name                      = local.jobs_group_name
  vpc_zone_identifier       = [for s in var.subnets : s.id]
  min_size                  = var.jobs_count
  max_size                  = var.jobs_count
  desired_capacity          = var.jobs_count
  health_check_type         = "EC2"
  health_check_grace_period = 120
  termination_policies      = ["OldestLaunchTemplate", "OldestInstance"]

  launch_template {
    id      = aws_launch_template.jobs.id
    version = aws_launch_template.jobs.latest_version
  }

  instance_refresh {
    strategy = "Rolling"

    preferences {
      min_healthy_percentage = 0
    }
  }

  dynamic "tag" {
    for_each = merge(local.tags, { "fjord:role" = "jobs" })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }
}

resource "aws_autoscaling_lifecycle_hook" "jobs_terminating" {
  name                   = local.hook_name
  autoscaling_group_name = aws_autoscaling_group.jobs.name
  lifecycle_transition   = "autoscaling:EC2_INSTANCE_TERMINATING"
  heartbeat_timeout      = var.lifecycle_heartbeat_timeout_seconds
  default_result         = "CONTINUE"

  lifecycle {
    precondition {
      condition     = var.lifecycle_heartbeat_timeout_seconds >= local.stop_timeout_seconds
      error_message = "lifecycle_heartbeat_timeout_seconds must be at least shutdown_timeout_ms / 1000 + 30 s, or EC2 terminates agents mid-job."
    }
  }
}

# --- Each role may complete the lifecycle actions of its own groups -------

data "aws_iam_policy_document" "serve_lifecycle" {
  statement {
    sid       = "CompleteOwnLifecycleActions"
    effect    = "Allow"
    actions   = ["autoscaling:CompleteLifecycleAction"]
    resources = [for group in aws_autoscaling_group.serve : group.arn]
  }
}

resource "aws_iam_role_policy" "serve_lifecycle" {
  name   = "${var.name}-serve-lifecycle"
  role   = var.serve_role_name
  policy = data.aws_iam_policy_document.serve_lifecycle.json
}

data "aws_iam_policy_document" "jobs_lifecycle" {
  statement {
    sid       = "CompleteOwnLifecycleActions"
    effect    = "Allow"
    actions   = ["autoscaling:CompleteLifecycleAction"]
    resources = [aws_autoscaling_group.jobs.arn]
  }
}

resource "aws_iam_role_policy" "jobs_lifecycle" {
  name   = "${var.name}-jobs-lifecycle"
  role   = var.jobs_role_name
  policy = data.aws_iam_policy_document.jobs_lifecycle.json
}
